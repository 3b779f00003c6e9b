//! `ext2mfr IMAGE MOUNTPOINT [-o opt,...] [-f]`: mount an ext2 image through
//! FUSE. The same argument form works from `mount -t fuse.ext2mfr IMAGE DIR
//! -o ...` and from an fstab line. Without `-f` the daemon goes to the
//! background once the mount is up (so mount(8) returns when it is usable).
//!
//! A clean unmount (umount, fusermount3 -u, SIGTERM, SIGINT, SIGHUP) writes
//! everything back and marks the super block clean before the process exits.

use ext2mfr::fs::{Ext2, FsConfig};
use ext2mfr::fuse::FuseFs;
use ext2mfr::options::{MountOptions, Transport};
use ext2mfr::transport::session::MountParams;
use fuser::{MountOption, SessionACL};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: ext2mfr IMAGE MOUNTPOINT [-o option[,option...]] [-f]

  -f          stay in the foreground
  -o OPTIONS  ro, rw, allow_other, allow_root, default_permissions, fsname=NAME,
              subtype=NAME, noatime, atime, nodev, nosuid, noexec,
              cache=SIZE (block cache, default 64M), threads=N (default: CPUs, at most 8),
              commit=SECS (background write-back interval, default 5; 0 = off),
              log=PATH (the log, once mounted; default: stderr with -f, else syslog),
              recovery=on|off (default on), ama=on|off (default on),
              peek=on|off, recycle=on|off (default on), mem=SIZE (AMA page pool),
              policy=retry|fail-fast|retry-alternate (default retry),
              transport=dev|uring|auto (default dev: /dev/fuse through fuser;
              uring: FUSE over io_uring, refused where the kernel has it off;
              auto: io_uring where the kernel offers it, else dev),
              queue_policy=idle|normal (io_uring queue threads: idle (the
              default) keeps a single-threaded application on its CPU,
              with a watchdog against starvation; normal: SCHED_OTHER),
              writeback_cache (the kernel caches writes and sends them
              later, in large writes; a write's errors then show at
              fsync or close; default off),
              baseline (= recovery=off, ama=off),
              inject_alloc=P, inject_safety=P, inject_interval=N, inject_seed=N";

struct Args {
    image: PathBuf,
    mountpoint: PathBuf,
    options: MountOptions,
    foreground: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut pos = Vec::new();
    let mut lists = Vec::new();
    let mut foreground = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("ext2mfr {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "-f" => foreground = true,
            "-o" => lists.push(it.next().ok_or("option -o needs an argument")?),
            s if s.starts_with("-o") => lists.push(s[2..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown argument '{s}'"))
            }
            _ => pos.push(a),
        }
    }
    if pos.len() != 2 {
        return Err("expected IMAGE and MOUNTPOINT".into());
    }
    let options = MountOptions::parse(lists.iter().map(String::as_str))?;
    let mountpoint = PathBuf::from(&pos[1]);
    if !mountpoint.is_dir() {
        return Err(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        ));
    }
    Ok(Args {
        image: PathBuf::from(&pos[0]),
        mountpoint,
        options,
        foreground,
    })
}

/// Block the termination signals in every thread; one thread waits for them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// With recovery on, a panic inside a request is caught and rolled back by
/// its domain: log it (quietly for the runtime's own control-flow panics).
/// With recovery off (the baseline), a panic ends the daemon, as a kernel
/// oops would end the kernel's file system.
fn install_panic_hook(recovery: bool) {
    std::panic::set_hook(Box::new(move |info| {
        if recovery {
            if !recovery_rt::is_runtime_payload(info.payload()) {
                log::debug!("fault caught by recovery: {info}");
            }
        } else {
            log::error!("{info}; recovery is off, the daemon stops");
            std::process::abort();
        }
    }));
}

/// The file-system type shown as `fuse.SUBTYPE` (so findmnt, `df -T` and
/// mount helpers see ext2mfr). fuser's own mount(2) as root drops its
/// Subtype option (it goes only to fusermount3), so root passes it to the
/// kernel as a mount parameter, which the kernel's FUSE takes.
fn subtype(name: String) -> MountOption {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        MountOption::CUSTOM(format!("subtype={name}"))
    } else {
        MountOption::Subtype(name)
    }
}

/// fuser's configuration from the mount options: how the mount shows in
/// /proc/mounts, who may use it, and how many threads serve it.
fn fuse_config(o: &MountOptions, image: &std::path::Path) -> fuser::Config {
    let mut mount_options = vec![
        MountOption::FSName(o.fsname.clone().unwrap_or_else(|| {
            // The source as an absolute path, however it was named.
            std::fs::canonicalize(image)
                .unwrap_or_else(|_| image.to_path_buf())
                .display()
                .to_string()
        })),
        subtype(o.subtype.clone().unwrap_or_else(|| "ext2mfr".into())),
        MountOption::DefaultPermissions,
        if o.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
        if o.dev {
            MountOption::Dev
        } else {
            MountOption::NoDev
        },
        if o.suid {
            MountOption::Suid
        } else {
            MountOption::NoSuid
        },
        if o.exec {
            MountOption::Exec
        } else {
            MountOption::NoExec
        },
    ];
    if !o.atime {
        mount_options.push(MountOption::NoAtime);
    }
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = mount_options;
    fuse_config.acl = if o.allow_other {
        SessionACL::All
    } else if o.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    fuse_config.n_threads = Some(o.threads);
    fuse_config.clone_fd = true;
    fuse_config
}

/// Mounted: let the caller go on, and serve from a child (no threads yet).
/// `Err` in the parent (its exit code, after a failed fork).
fn go_to_background() -> Result<(), ExitCode> {
    // SAFETY: fork with a single thread running; the child only continues
    // this program.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("ext2mfr: fork: {}", std::io::Error::last_os_error());
            Err(ExitCode::from(1))
        }
        0 => {
            // SAFETY: the child leaves the caller's session.
            unsafe { libc::setsid() };
            Ok(())
        }
        // The parent leaves without running destructors: dropping the
        // session here would unmount what the child now serves.
        // SAFETY: _exit ends the process immediately.
        _ => unsafe { libc::_exit(0) },
    }
}

/// A thread that waits for SIGINT, SIGTERM or SIGHUP (blocked everywhere
/// else) and unmounts.
fn unmount_on_signals(
    mut unmount: impl FnMut() -> std::io::Result<()> + Send + 'static,
    sigs: libc::sigset_t,
) {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: waits on the set blocked above.
            unsafe { libc::sigwait(&sigs, &mut sig) };
            log::info!("signal {sig}: unmounting");
            if let Err(e) = unmount() {
                log::error!("unmount after signal {sig}: {e}");
            }
        })
        .expect("spawn signal thread");
}

/// Which transport serves the mount.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chosen {
    /// fuser over /dev/fuse.
    Fuser,
    /// Our own message layer: over io_uring (`true`) or /dev/fuse.
    Own { uring: bool },
}

/// The transport `transport=` asks for, as far as the kernel allows it:
/// `Err` refuses the mount (io_uring asked for, and the kernel has it off).
fn choose_transport(t: Transport) -> Result<Chosen, String> {
    use ext2mfr::transport::{uring_enabled, ENABLE_URING};
    Ok(match (t, uring_enabled()) {
        (Transport::Dev, _) => Chosen::Fuser,
        (Transport::DevOwn, _) => Chosen::Own { uring: false },
        (Transport::Uring | Transport::Auto, Some(true)) => Chosen::Own { uring: true },
        (Transport::Auto, _) => Chosen::Fuser,
        (Transport::Uring, Some(false)) => {
            return Err(format!(
                "transport=uring: FUSE over io_uring is off in this kernel \
                 ({ENABLE_URING} is N; as root: echo Y > {ENABLE_URING})"
            ))
        }
        (Transport::Uring, None) => {
            return Err(format!(
                "transport=uring: this kernel has no FUSE over io_uring \
                 (no {ENABLE_URING}: Linux 6.14 or later with CONFIG_FUSE_IO_URING)"
            ))
        }
    })
}

/// What our own session mounts with (as `fuse_config` tells fuser).
fn own_params(o: &MountOptions, image: &std::path::Path) -> MountParams {
    MountParams {
        fsname: o.fsname.clone().unwrap_or_else(|| {
            std::fs::canonicalize(image)
                .unwrap_or_else(|_| image.to_path_buf())
                .display()
                .to_string()
        }),
        subtype: o.subtype.clone().unwrap_or_else(|| "ext2mfr".into()),
        // allow_root: the kernel knows only allow_other; the dispatcher
        // refuses everyone but root and the owner.
        allow_other: o.allow_other || o.allow_root,
        read_only: o.read_only,
        dev: o.dev,
        suid: o.suid,
        exec: o.exec,
        atime: o.atime,
    }
}

/// The background writers of a writable mount: the cache's (whenever a
/// quarter of it is dirty) and, unless `commit=0`, a write-back and sync
/// every `commit` seconds.
fn start_writers(fs: &std::sync::Arc<Ext2>, o: &MountOptions) {
    if o.read_only {
        return;
    }
    let cache_fs = fs.clone();
    std::thread::Builder::new()
        .name("cache-writer".into())
        .spawn(move || cache_fs.cache.writer_loop())
        .expect("spawn cache writer thread");
    if o.commit_secs > 0 {
        write_back_every(fs.clone(), Duration::from_secs(o.commit_secs));
    }
}

/// Background write-back every `every` (`commit=SECS`).
fn write_back_every(fs: std::sync::Arc<Ext2>, every: Duration) {
    std::thread::Builder::new()
        .name("writeback".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            // An idle file system is left alone (no periodic fdatasync).
            if fs.cache.dirty_count() == 0 {
                continue;
            }
            if let Err(e) = fs.sync() {
                log::error!("background write-back: {e}");
            }
        })
        .expect("spawn writeback thread");
}

/// `ext2mfr IMAGE DIR -o remount,ro|rw` (what mount(8) runs for
/// `mount -o remount,ro DIR`): the daemon serving DIR writes back and
/// refuses writes (or takes them again), then the kernel's mount changes
/// too, keeping its other flags.
fn remount(mnt: &std::path::Path, ro: bool) -> ExitCode {
    let Ok(path) = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()) else {
        return ExitCode::from(2);
    };
    // Read-only: the daemon first (it writes back, then refuses writes),
    // then the kernel. Read-write: the kernel first (a read-only mount
    // refuses the attribute the daemon is told through), undone if the
    // daemon cannot write (an image mounted `ro` was opened read-only).
    let steps: [&dyn Fn() -> std::io::Result<()>; 2] = if ro {
        [&|| tell_daemon(&path, true), &|| {
            kernel_remount(&path, true)
        }]
    } else {
        [&|| kernel_remount(&path, false), &|| {
            tell_daemon(&path, false)
        }]
    };
    for (k, step) in steps.iter().enumerate() {
        if let Err(e) = step() {
            eprintln!("ext2mfr: remount of {}: {e}", mnt.display());
            if !ro && k == 1 {
                let _ = kernel_remount(&path, true);
            }
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// The daemon's `ext2mfr.read_only` attribute on the mount's root.
fn tell_daemon(path: &std::ffi::CStr, ro: bool) -> std::io::Result<()> {
    let value: &[u8] = if ro { b"1" } else { b"0" };
    // SAFETY: valid C strings and a value buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"ext2mfr.read_only".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// mount(2) with MS_REMOUNT, keeping the mount's other flags.
fn kernel_remount(path: &std::ffi::CStr, ro: bool) -> std::io::Result<()> {
    let mut flags = libc::MS_REMOUNT;
    // SAFETY: statvfs fills the zeroed struct.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut sv) } == 0 {
        for (st, ms) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if sv.f_flag & st != 0 {
                flags |= ms;
            }
        }
    }
    if ro {
        flags |= libc::MS_RDONLY;
    }
    // SAFETY: a remount of an existing mount point; no source or data.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            path.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Serve through our own message layer (`transport=uring|auto|dev-own`):
/// mounted before going to the background (so mount(8) returns once it is
/// there), INIT answered and the threads started after it.
fn serve_own(
    args: &Args,
    fs: std::sync::Arc<Ext2>,
    uring: bool,
    log_file: Option<std::fs::File>,
    sigs: libc::sigset_t,
) -> ExitCode {
    let o = &args.options;
    let mounted = match ext2mfr::transport::mount(&args.mountpoint, &own_params(o, &args.image)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ext2mfr: mounting on {}: {e}", args.mountpoint.display());
            let _ = fs.unmount();
            return ExitCode::from(1);
        }
    };
    if !args.foreground {
        if let Err(code) = go_to_background() {
            return code;
        }
        ext2mfr::logging::to_background(log_file);
    } else if let Some(f) = log_file {
        ext2mfr::logging::to_file(f);
    }
    // allow_root without allow_other: root and the owner (this process's
    // user) only.
    // SAFETY: getuid has no preconditions.
    let only_uid = (o.allow_root && !o.allow_other).then(|| unsafe { libc::getuid() });
    let mountpoint = args.mountpoint.clone();
    let dev_name = if o.transport == Transport::DevOwn {
        "dev-own"
    } else {
        "dev"
    };
    let running = match mounted.serve(
        fs.clone(),
        uring,
        o.queue_policy,
        o.threads,
        only_uid,
        dev_name,
    ) {
        Ok(r) => r,
        Err(e) => {
            log::error!("FUSE session on {}: {e}", mountpoint.display());
            let _ = fs.unmount();
            return ExitCode::from(1);
        }
    };
    if uring && !running.uring {
        // The parameter was on, yet INIT did not take io_uring (an older
        // protocol): refuse for `uring`, fall back for `auto`.
        if o.transport == Transport::Uring {
            log::error!("transport=uring: the kernel did not accept FUSE over io_uring at INIT");
            let _ = ext2mfr::transport::session::unmount(&mountpoint);
            running.wait();
            let _ = fs.unmount();
            return ExitCode::from(1);
        }
    }
    log::info!(
        "transport: {}",
        fs.transport.get().copied().unwrap_or(dev_name)
    );
    unmount_on_signals(
        move || ext2mfr::transport::session::unmount(&mountpoint),
        sigs,
    );
    start_writers(&fs, o);
    running.wait();
    finish(&fs)
}

fn main() -> ExitCode {
    ext2mfr::logging::init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ext2mfr: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let o = &args.options;
    if o.remount {
        return remount(&args.mountpoint, o.read_only);
    }
    let log_file = match o.log_file.as_deref().map(ext2mfr::logging::open_file) {
        Some(Err(e)) => {
            let path = o.log_file.as_ref().expect("named").display();
            eprintln!("ext2mfr: log file {path}: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(f)) => Some(f),
        None => None,
    };
    let config = FsConfig {
        read_only: o.read_only,
        cache_bytes: o.cache_bytes,
        atime: o.atime,
        recovery: o.recovery,
        policy: o.policy,
        ama: o.ama,
        threads: o.threads,
        writeback_cache: o.writeback_cache,
    };
    // Faults are injected only where the mount asked for them. (Before the
    // mount: the page pool takes the injector when it is made.)
    faultinject::install(faultinject::Injector::new(o.inject.clone()));
    let fs = match Ext2::mount(&args.image, config) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("ext2mfr: {e}");
            return ExitCode::from(1);
        }
    };
    for w in &fs.mount_warnings {
        eprintln!("ext2mfr: warning: {}: {w}", args.image.display());
    }

    let chosen = match choose_transport(o.transport) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ext2mfr: {e}");
            let _ = fs.unmount();
            return ExitCode::from(1);
        }
    };

    install_panic_hook(o.recovery);

    let sigs = block_signals();
    if let Chosen::Own { uring } = chosen {
        return serve_own(&args, fs, uring, log_file, sigs);
    }
    let _ = fs.transport.set("dev");
    let fuse_config = fuse_config(o, &args.image);
    let fuse_fs = FuseFs::new(fs.clone());
    let notifier = fuse_fs.notifier_cell();
    let mut session = match fuser::Session::new(fuse_fs, &args.mountpoint, &fuse_config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ext2mfr: mounting on {}: {e}", args.mountpoint.display());
            let _ = fs.unmount();
            return ExitCode::from(1);
        }
    };
    let _ = notifier.set(session.notifier());
    if !args.foreground {
        if let Err(code) = go_to_background() {
            return code;
        }
        ext2mfr::logging::to_background(log_file);
    } else if let Some(f) = log_file {
        ext2mfr::logging::to_file(f);
    }

    // (Logged once in the background: nothing goes to the terminal then.)
    log::info!("transport: /dev/fuse (fuser)");
    let mut unmounter = session.unmount_callable();
    unmount_on_signals(move || unmounter.unmount(), sigs);
    start_writers(&fs, o);

    let served = session.run();
    if let Err(e) = &served {
        log::error!("FUSE session ended with an error: {e}");
    }
    finish(&fs)
}

/// Write back and mark clean once the session has ended.
fn finish(fs: &Ext2) -> ExitCode {
    match fs.unmount() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("writing back at unmount failed: {e}");
            ExitCode::from(1)
        }
    }
}
