//! Requests read from /dev/fuse, one per read(2), answered with one
//! writev(2) each: the classic transport, over our own message layer. With
//! io_uring it still carries what the kernel never puts in a ring (FORGET,
//! INTERRUPT).

use super::abi::{self, InHeader, Reader};
use super::dispatch::{Answer, Dispatcher};
use super::session::DEV_BUFFER;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

/// `threads` threads serving /dev/fuse until the connection ends (unmount,
/// abort).
pub fn spawn(
    dev: Arc<File>,
    d: Arc<Dispatcher>,
    threads: usize,
) -> io::Result<Vec<JoinHandle<()>>> {
    (0..threads.max(1))
        .map(|k| {
            let (dev, d) = (dev.clone(), d.clone());
            std::thread::Builder::new()
                .name(format!("fuse-dev{k}"))
                .spawn(move || serve(&dev, &d))
        })
        .collect()
}

fn serve(dev: &File, d: &Dispatcher) {
    let mut buf = vec![0u8; DEV_BUFFER];
    loop {
        // SAFETY: reads into our buffer of its length.
        let n = unsafe { libc::read(dev.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            match io::Error::last_os_error().raw_os_error() {
                // Interrupted, or a request gone before we read it.
                Some(libc::EINTR | libc::EAGAIN | libc::ENOENT) => continue,
                // Unmounted (or the connection aborted): done.
                Some(libc::ENODEV) => return,
                e => {
                    log::error!("reading /dev/fuse: errno {e:?}");
                    return;
                }
            }
        }
        handle(dev, d, &buf[..n as usize]);
    }
}

/// One message read from /dev/fuse: dispatched and answered.
pub fn handle(dev: &File, d: &Dispatcher, msg: &[u8]) {
    let Ok(h) = Reader::new(msg).take::<InHeader>() else {
        log::warn!(
            "a /dev/fuse message of {} bytes, shorter than its header",
            msg.len()
        );
        return;
    };
    let body = &msg[std::mem::size_of::<InHeader>()..];
    // The opcode's own header first (a short one is seen by the
    // dispatcher's checks), then names and data.
    let split = abi::op_header_size(h.opcode).min(body.len());
    let (op_header, rest) = body.split_at(split);
    let answer = d.dispatch(&h, op_header, rest);
    reply(dev, h.unique, answer);
}

/// FUSE_NOTIFY_INVAL_INODE: the kernel drops its cached data of `nodeid`
/// in `off..off + len` (and its attributes).
const NOTIFY_INVAL_INODE: i32 = 2;

/// Tell the kernel its cached data of a byte range of `nodeid` is stale
/// (see `Reply::CacheStale`): a notification is a message with unique 0
/// and the notification's code where an error would be.
pub fn notify_inval_inode(dev: &File, nodeid: u64, off: i64, len: i64) {
    let mut body = nodeid.to_le_bytes().to_vec();
    body.extend_from_slice(&off.to_le_bytes());
    body.extend_from_slice(&len.to_le_bytes());
    write_message(dev, 0, NOTIFY_INVAL_INODE, body);
}

/// Write the reply to request `unique`.
pub fn reply(dev: &File, unique: u64, answer: Answer) {
    let (error, body) = match answer {
        Answer::Nothing => return,
        Answer::Error(e) => (-e, Vec::new()),
        Answer::Ok(b) => (0, b),
    };
    write_message(dev, unique, error, body);
}

/// One message to the kernel: the out header, then `body`.
fn write_message(dev: &File, unique: u64, error: i32, body: Vec<u8>) {
    let h = abi::OutHeader {
        len: (std::mem::size_of::<abi::OutHeader>() + body.len()) as u32,
        error,
        unique,
    };
    let iov = [
        libc::iovec {
            iov_base: bytemuck::bytes_of(&h).as_ptr() as *mut _,
            iov_len: std::mem::size_of::<abi::OutHeader>(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut _,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs point at live buffers of their lengths.
    let w = unsafe { libc::writev(dev.as_raw_fd(), iov.as_ptr(), 2) };
    if w < 0 {
        let e = io::Error::last_os_error();
        // ENOENT: the request was interrupted and is gone; ENODEV: the
        // connection ended meanwhile. Neither is ours to fix.
        if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) {
            log::error!("replying to FUSE request {unique}: {e}");
        }
    }
}
