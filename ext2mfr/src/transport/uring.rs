//! FUSE over io_uring (Linux 6.14+): one queue per possible CPU, each a
//! thread pinned to its CPU with its own ring (128-byte SQEs, the FUSE
//! command lives in the SQE's 80-byte tail). Each ring entry is an
//! `IORING_OP_URING_CMD` on /dev/fuse owning two buffers (the headers and a
//! payload of the negotiated size); the kernel completes it when it has put
//! a request there, and `COMMIT_AND_FETCH` sends the reply and re-arms the
//! entry in one submission. The kernel queues a request on the queue of
//! the CPU that issued it, and takes none until every queue has an entry.

use super::abi::{self, InHeader, UringCmdReq, UringReqHeader};
use super::dispatch::{Answer, Dispatcher};
use super::sched::{self, QueuePolicy, Queues};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The number of queues the kernel makes: one per possible CPU
/// (`num_possible_cpus`), counted from /sys/devices/system/cpu/possible
/// ("0-1", "0,2-3").
pub fn possible_cpus() -> io::Result<Vec<usize>> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cpu list '{}'", s.trim()),
        )
    };
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        cpus.extend(a..=b);
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

/// One queue thread per possible CPU, each with `depth` entries of
/// `payload` bytes, scheduled by `policy` (with `Idle`, a watchdog thread
/// too, counting in `promotions`). They end when the connection does
/// (unmount, abort).
pub fn spawn(
    dev: Arc<File>,
    d: Arc<Dispatcher>,
    payload: usize,
    depth: usize,
    policy: QueuePolicy,
    promotions: Arc<AtomicU64>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let cpus = possible_cpus()?;
    let queues = Queues::new(cpus.len(), promotions);
    let mut threads = Vec::new();
    for (qid, &cpu) in cpus.iter().enumerate() {
        let (dev, d, queues) = (dev.clone(), d.clone(), queues.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("fuse-q{qid}"))
                .spawn(move || {
                    pin_to(cpu);
                    let _leave = queues.enter(qid, policy);
                    if let Err(e) =
                        Queue::new(&dev, qid as u16, payload, depth).and_then(|mut q| q.serve(&d))
                    {
                        log::error!("FUSE ring queue {qid}: {e}");
                    }
                })?,
        );
    }
    if policy == QueuePolicy::Idle {
        threads.push(sched::watchdog(queues)?);
    }
    Ok(threads)
}

/// Run this thread on `cpu` only: its queue's requests come from there.
/// (Not fatal: a CPU possible but offline cannot be pinned to, and then
/// the queue is served from anywhere.)
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays within it for
    // cpu < CPU_SETSIZE, checked.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            log::warn!(
                "FUSE ring queue: pinning to CPU {cpu}: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// One ring entry's buffers. Boxed: the kernel keeps their addresses from
/// REGISTER until the connection ends, so they never move.
struct Entry {
    header: Box<UringReqHeader>,
    payload: Box<[u8]>,
    iov: Box<[libc::iovec; 2]>,
}

struct Queue<'a> {
    dev: &'a File,
    qid: u16,
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    entries: Vec<Entry>,
}

/// The FUSE command in an SQE's 80-byte command area.
fn cmd_area(qid: u16, commit_id: u64) -> [u8; 80] {
    let mut cmd = [0u8; 80];
    let req = UringCmdReq {
        flags: 0,
        commit_id,
        qid,
        padding: [0; 6],
    };
    cmd[..std::mem::size_of::<UringCmdReq>()].copy_from_slice(bytemuck::bytes_of(&req));
    cmd
}

impl<'a> Queue<'a> {
    fn new(dev: &'a File, qid: u16, payload: usize, depth: usize) -> io::Result<Queue<'a>> {
        // One issuer (this thread), and the kernel's completions run when
        // this thread waits for them, not as interrupts of its work.
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build((depth as u32).next_power_of_two().max(2))?;
        let entries = (0..depth)
            .map(|_| {
                let mut header: Box<UringReqHeader> = Box::new(bytemuck::Zeroable::zeroed());
                let mut payload = vec![0u8; payload].into_boxed_slice();
                let iov = Box::new([
                    libc::iovec {
                        iov_base: (&mut *header as *mut UringReqHeader).cast(),
                        iov_len: std::mem::size_of::<UringReqHeader>(),
                    },
                    libc::iovec {
                        iov_base: payload.as_mut_ptr().cast(),
                        iov_len: payload.len(),
                    },
                ]);
                Entry {
                    header,
                    payload,
                    iov,
                }
            })
            .collect();
        Ok(Queue {
            dev,
            qid,
            ring,
            entries,
        })
    }

    fn push(&mut self, sqe: squeue::Entry128) -> io::Result<()> {
        // SAFETY: the SQE's buffers (an entry's, boxed) live as long as
        // the queue, which outlives the ring's use of them (the thread
        // returns only when every entry has completed for good).
        unsafe {
            if self.ring.submission().push(&sqe).is_err() {
                self.ring.submit()?;
                self.ring
                    .submission()
                    .push(&sqe)
                    .map_err(|_| io::Error::other("submission queue full"))?;
            }
        }
        Ok(())
    }

    /// REGISTER entry `i`: `addr` is its two iovecs, `len` their count
    /// (which the crate's builder has no setter for: set in the raw SQE).
    fn register(&mut self, i: usize) -> io::Result<()> {
        let sqe = opcode::UringCmd80::new(types::Fd(self.dev.as_raw_fd()), abi::URING_CMD_REGISTER)
            .cmd(cmd_area(self.qid, 0))
            .addr(Some(self.entries[i].iov.as_ptr() as u64))
            .build()
            .user_data(i as u64);
        // SAFETY: Entry128 is `#[repr(C)]` over the kernel's 128-byte SQE;
        // `len` is the u32 at offset 24 of `struct io_uring_sqe`.
        let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
        raw[24..28].copy_from_slice(&2u32.to_ne_bytes());
        let sqe: squeue::Entry128 = unsafe { std::mem::transmute(raw) };
        self.push(sqe)
    }

    fn commit(&mut self, i: usize, commit_id: u64) -> io::Result<()> {
        let sqe = opcode::UringCmd80::new(
            types::Fd(self.dev.as_raw_fd()),
            abi::URING_CMD_COMMIT_AND_FETCH,
        )
        .cmd(cmd_area(self.qid, commit_id))
        .build()
        .user_data(i as u64);
        self.push(sqe)
    }

    fn serve(&mut self, d: &Dispatcher) -> io::Result<()> {
        for i in 0..self.entries.len() {
            self.register(i)?;
        }
        let mut live = self.entries.len();
        let mut done = Vec::new();
        while live > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
            done.clear();
            done.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data() as usize, c.result())),
            );
            for &(i, res) in &done {
                if res < 0 {
                    // The connection ended (ENOTCONN, ECONNABORTED) or the
                    // ring is being torn down: this entry is finished.
                    if !matches!(-res, libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED) {
                        log::error!(
                            "FUSE ring queue {}: entry {i}: {}",
                            self.qid,
                            io::Error::from_raw_os_error(-res)
                        );
                    }
                    live -= 1;
                    continue;
                }
                let commit_id = self.handle(d, i);
                self.commit(i, commit_id)?;
            }
        }
        Ok(())
    }

    /// Serve the request in entry `i` and leave its reply there; the
    /// commit id to send it with.
    fn handle(&mut self, d: &Dispatcher, i: usize) -> u64 {
        let e = &mut self.entries[i];
        let h: InHeader =
            bytemuck::pod_read_unaligned(&e.header.in_out[..std::mem::size_of::<InHeader>()]);
        let ent = e.header.ring_ent_in_out;
        let op_header =
            &e.header.op_in[..abi::op_header_size(h.opcode).min(abi::URING_OP_IN_OUT_SZ)];
        let rest = &e.payload[..(ent.payload_sz as usize).min(e.payload.len())];
        let answer = d.dispatch(&h, op_header, rest);
        let (error, len) = match answer {
            Answer::Ok(b) if b.len() <= e.payload.len() => {
                e.payload[..b.len()].copy_from_slice(&b);
                (0, b.len())
            }
            Answer::Ok(b) => {
                log::error!("a reply of {} bytes does not fit the ring payload", b.len());
                (-libc::EIO, 0)
            }
            Answer::Error(err) => (-err, 0),
            // Nothing that goes unanswered comes through a ring (FORGET
            // and INTERRUPT come on /dev/fuse); the entry must be re-armed
            // with some reply all the same.
            Answer::Nothing => (-libc::ENOSYS, 0),
        };
        let oh = abi::OutHeader {
            len: (std::mem::size_of::<abi::OutHeader>() + len) as u32,
            error,
            unique: h.unique,
        };
        e.header.in_out[..std::mem::size_of::<abi::OutHeader>()]
            .copy_from_slice(bytemuck::bytes_of(&oh));
        e.header.ring_ent_in_out.payload_sz = len as u32;
        ent.commit_id
    }
}
