mod common;
use common::*;

#[test]
fn mount_write_unmount_fsck() {
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = Mount::new(&img.path, "");
    std::fs::write(m.p("hello"), b"hello world").unwrap();
    assert_eq!(std::fs::read(m.p("hello")).unwrap(), b"hello world");
    m.unmount_and_check();
    assert_eq!(debugfs_cat(&img.path, "/hello"), b"hello world");
}
