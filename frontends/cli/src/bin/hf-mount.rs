fn main() {
    hf_mount::launcher_main();
}
