fn main() {
    hf_mount::nfs_main();
}
