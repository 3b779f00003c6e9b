//! Where the daemon's log goes. In the foreground (`-f`), and until the
//! daemon goes to the background, to stderr. In the background the daemon
//! writes nothing to the terminal that started it (a script that mounted it
//! would otherwise find the unmount's report in its own output): the log
//! goes to the file `log=PATH` names, else to syslog (the journal where
//! there is one), and stdin, stdout and stderr are /dev/null.
//!
//! env_logger filters and formats (`RUST_LOG`, default `info,fuser=error`);
//! its output goes through one switchable sink.

use parking_lot::Mutex;
use std::ffi::CString;
use std::io::Write;
use std::path::Path;

enum Sink {
    Stderr,
    File(std::fs::File),
    /// Lines gathered until their newline, then one syslog record each.
    Syslog(Vec<u8>),
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);

/// env_logger's target: whatever the sink is now.
struct SinkWriter;

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *SINK.lock() {
            Sink::Stderr => std::io::stderr().write_all(buf)?,
            Sink::File(f) => f.write_all(buf)?,
            Sink::Syslog(line) => {
                line.extend_from_slice(buf);
                while let Some(end) = line.iter().position(|&b| b == b'\n') {
                    let record: Vec<u8> = line.drain(..=end).collect();
                    syslog(&record[..end]);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *SINK.lock() {
            Sink::Stderr => std::io::stderr().flush(),
            Sink::File(f) => f.flush(),
            Sink::Syslog(_) => Ok(()),
        }
    }
}

fn syslog(line: &[u8]) {
    let text: Vec<u8> = line
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    let Ok(msg) = CString::new(text) else {
        return;
    };
    // SAFETY: a "%s" format with one valid C string argument.
    unsafe { libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), msg.as_ptr()) };
}

/// Log to stderr (the start, and `-f`).
pub fn init() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,fuser=error"))
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(SinkWriter)))
        .init();
}

/// The log file `log=PATH`, opened for appending before the daemon leaves
/// the foreground, so that a bad path is refused while it can still say so.
pub fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Log to `file` from now on (`log=PATH` in the foreground).
pub fn to_file(file: std::fs::File) {
    *SINK.lock() = Sink::File(file);
}

/// The daemon is in the background: log to `file` (or syslog without one),
/// and let go of the terminal.
pub fn to_background(file: Option<std::fs::File>) {
    *SINK.lock() = match file {
        Some(f) => Sink::File(f),
        None => {
            // SAFETY: a static identity string; openlog keeps the pointer.
            unsafe { libc::openlog(c"ext2mfr".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
            Sink::Syslog(Vec::new())
        }
    };
    detach_stdio();
}

/// stdin, stdout and stderr to /dev/null (what a panic message or a stray
/// print would otherwise write into the starting terminal).
fn detach_stdio() {
    // SAFETY: open and dup2 on our own descriptors.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null < 0 {
            return;
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if null > 2 {
            libc::close(null);
        }
    }
}
