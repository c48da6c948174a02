fn main() {
    hf_mount::fuse_main();
}
