//! Mount options: the standard FUSE/mount ones and ext2mfr's own. Unknown or
//! malformed options refuse the mount with a message naming them.

use crate::fs::AmaConfig;
pub use crate::transport::sched::QueuePolicy;
use ama::Policy;

/// Everything `-o` can set.
#[derive(Clone, Debug, PartialEq)]
pub struct MountOptions {
    pub read_only: bool,
    pub allow_other: bool,
    pub allow_root: bool,
    pub fsname: Option<String>,
    pub subtype: Option<String>,
    pub atime: bool,
    pub dev: bool,
    pub suid: bool,
    pub exec: bool,
    /// Block-cache capacity in bytes (`cache=SIZE`).
    pub cache_bytes: usize,
    /// FUSE worker threads (`threads=N`; default: the number of CPUs, at most 8).
    pub threads: usize,
    /// Seconds between background write-backs (`commit=N`, 0 = only on sync/unmount).
    pub commit_secs: u64,
    /// Where the log goes once the mount is up (`log=PATH`); without it,
    /// stderr in the foreground and syslog in the background.
    pub log_file: Option<std::path::PathBuf>,
    /// `remount`: change a running mount (`ro`/`rw`) instead of mounting.
    pub remount: bool,
    /// Every request runs as a recovery domain (`recovery=on|off`).
    pub recovery: bool,
    /// What a rolled-back request, or a failed AMA reservation, does
    /// (`policy=fail-fast|retry|retry-alternate`).
    pub policy: Policy,
    /// Anticipatory memory allocation (`ama=on|off`, `peek=on|off`,
    /// `recycle=on|off`, `mem=SIZE`).
    pub ama: AmaConfig,
    /// Fault injection (`inject_alloc=P`, `inject_safety=P`,
    /// `inject_interval=N`, `inject_seed=N`).
    pub inject: faultinject::Config,
    /// How requests travel (`transport=`).
    pub transport: Transport,
    /// The kernel keeps written data in its page cache and sends it later,
    /// in large writes (`writeback_cache`; off by default: then every
    /// write(2) reaches the image's cache before it returns, and its
    /// errors at that call). See the README.
    pub writeback_cache: bool,
    /// How the io_uring queue threads are scheduled (`queue_policy=`).
    pub queue_policy: QueuePolicy,
}

/// `transport=dev|uring|auto|dev-own`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// /dev/fuse through fuser (the default until io_uring is proven).
    Dev,
    /// FUSE over io_uring; the mount is refused where the kernel cannot.
    Uring,
    /// io_uring where the kernel offers it, else `Dev`.
    Auto,
    /// /dev/fuse through our own message layer (the one io_uring uses):
    /// tests that layer without io_uring.
    DevOwn,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_only: false,
            allow_other: false,
            allow_root: false,
            fsname: None,
            subtype: None,
            atime: true,
            dev: true,
            suid: true,
            exec: true,
            cache_bytes: 64 << 20,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            commit_secs: 5,
            log_file: None,
            remount: false,
            recovery: true,
            policy: Policy::Retry,
            ama: AmaConfig::default(),
            inject: faultinject::Config::default(),
            transport: Transport::Dev,
            writeback_cache: false,
            queue_policy: QueuePolicy::Idle,
        }
    }
}

/// Parse a size with an optional K/M/G suffix (powers of 1024).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1u64 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

impl MountOptions {
    /// Parse comma-separated option lists (each `-o` argument is one list).
    pub fn parse<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<MountOptions, String> {
        let mut o = MountOptions::default();
        for list in lists {
            for opt in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                o.apply(opt)?;
            }
        }
        Ok(o)
    }

    fn apply<'a>(&mut self, opt: &'a str) -> Result<(), String> {
        let (key, val) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let need =
            |v: Option<&'a str>| v.ok_or_else(|| format!("mount option '{key}' needs a value"));
        let flag = |v: Option<&str>| match v {
            None => Ok(()),
            Some(_) => Err(format!("mount option '{key}' takes no value")),
        };
        match key {
            "ro" => {
                flag(val)?;
                self.read_only = true
            }
            "rw" => {
                flag(val)?;
                self.read_only = false
            }
            "allow_other" => {
                flag(val)?;
                self.allow_other = true
            }
            "allow_root" => {
                flag(val)?;
                self.allow_root = true
            }
            // Permissions are always checked by the kernel (we always mount
            // with default_permissions), so the option is accepted as a no-op.
            "default_permissions"
            | "defaults"
            | "async"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "_netdev"
            | "nofail"
            | "relatime" => flag(val)?,
            // What the kernel's FUSE shows of a mount it made (and mount(8)
            // hands back for a remount): set by the mount itself, not by us.
            "user_id" | "group_id" | "rootmode" | "max_read" | "blksize" => {
                need(val)?;
            }
            "fsname" => self.fsname = Some(need(val)?.to_string()),
            "subtype" => self.subtype = Some(need(val)?.to_string()),
            "atime" | "strictatime" => {
                flag(val)?;
                self.atime = true
            }
            "noatime" => {
                flag(val)?;
                self.atime = false
            }
            "writeback_cache" => {
                flag(val)?;
                self.writeback_cache = true
            }
            "no_writeback_cache" => {
                flag(val)?;
                self.writeback_cache = false
            }
            "queue_policy" => {
                self.queue_policy = match val {
                    Some("idle") => QueuePolicy::Idle,
                    Some("normal") => QueuePolicy::Normal,
                    _ => {
                        return Err(format!(
                            "mount option '{opt}': expected queue_policy=idle or queue_policy=normal"
                        ))
                    }
                }
            }
            "dev" => self.dev = true,
            "nodev" => self.dev = false,
            "suid" => self.suid = true,
            "nosuid" => self.suid = false,
            "exec" => self.exec = true,
            "noexec" => self.exec = false,
            "cache" => {
                let v = need(val)?;
                let n = parse_size(v)
                    .filter(|&n| n >= 1 << 20)
                    .ok_or_else(|| format!("mount option cache={v}: need a size of at least 1M"))?;
                self.cache_bytes = n as usize;
            }
            "threads" => {
                let v = need(val)?;
                self.threads = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| format!("mount option threads={v}: need 1 to 64"))?;
            }
            "remount" => {
                flag(val)?;
                self.remount = true
            }
            "log" => {
                let v = need(val)?;
                if v.is_empty() {
                    return Err("mount option log=: need a file name".into());
                }
                self.log_file = Some(std::path::PathBuf::from(v));
            }
            "commit" => {
                let v = need(val)?;
                self.commit_secs = v
                    .parse()
                    .map_err(|_| format!("mount option commit={v}: need seconds"))?;
            }
            // Both mechanisms off: the same code with nothing around it.
            "baseline" => {
                flag(val)?;
                self.recovery = false;
                self.ama.enabled = false;
            }
            "recovery" => match val {
                Some("on") => self.recovery = true,
                Some("off") => self.recovery = false,
                _ => {
                    return Err(format!(
                        "mount option '{opt}': expected recovery=on or recovery=off"
                    ))
                }
            },
            "policy" => match val {
                Some("fail-fast") => self.policy = Policy::FailFast,
                Some("retry") => self.policy = Policy::Retry,
                Some("retry-alternate") => self.policy = Policy::RetryAlternate,
                _ => {
                    return Err(format!(
                        "mount option '{opt}': expected policy=fail-fast, policy=retry or policy=retry-alternate"
                    ))
                }
            },
            "inject_alloc" | "inject_safety" => {
                let v = need(val)?;
                let p: f64 = v
                    .parse()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| {
                        format!("mount option {key}={v}: need a probability from 0 to 1")
                    })?;
                if key == "inject_alloc" {
                    self.inject.alloc_p = p;
                } else {
                    self.inject.safety_p = p;
                }
            }
            "inject_interval" => {
                let v = need(val)?;
                let n: u64 = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!("mount option inject_interval={v}: need a positive count")
                })?;
                self.inject.safety_interval = Some(n);
            }
            "inject_seed" => {
                let v = need(val)?;
                self.inject.seed = v
                    .parse()
                    .map_err(|_| format!("mount option inject_seed={v}: need a number"))?;
            }
            "ama" | "peek" | "recycle" => {
                let on = match val {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err(format!("mount option '{opt}': expected {key}=on or {key}=off")),
                };
                match key {
                    "ama" => self.ama.enabled = on,
                    "peek" => self.ama.peek = on,
                    _ => self.ama.recycle = on,
                }
            }
            "mem" => {
                let v = need(val)?;
                let n = parse_size(v)
                    .filter(|&n| n >= 1 << 20)
                    .ok_or_else(|| format!("mount option mem={v}: need a size of at least 1M"))?;
                self.ama.mem_bytes = Some(n as usize);
            }
            "transport" => {
                self.transport = match val {
                    Some("dev") => Transport::Dev,
                    Some("uring") => Transport::Uring,
                    Some("auto") => Transport::Auto,
                    Some("dev-own") => Transport::DevOwn,
                    _ => {
                        return Err(format!(
                            "mount option '{opt}': expected transport=auto, transport=uring or transport=dev"
                        ))
                    }
                }
            }
            _ => return Err(format!("unknown mount option '{opt}'")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_standard_and_own() {
        let o = MountOptions::parse(["ro,allow_other,fsname=img", "cache=8M,threads=2,noatime"])
            .unwrap();
        assert!(o.read_only && o.allow_other && !o.atime);
        assert_eq!(o.fsname.as_deref(), Some("img"));
        assert_eq!(o.cache_bytes, 8 << 20);
        assert_eq!(o.threads, 2);
    }

    #[test]
    fn refuses_unknown_and_malformed() {
        assert!(MountOptions::parse(["bogus"])
            .unwrap_err()
            .contains("bogus"));
        assert!(MountOptions::parse(["cache=lots"])
            .unwrap_err()
            .contains("cache"));
        assert!(MountOptions::parse(["threads=0"]).is_err());
        assert!(MountOptions::parse(["ro=1"]).is_err());
        assert!(MountOptions::parse(["ama=maybe"]).is_err());
        assert!(MountOptions::parse(["log="]).is_err());
        assert!(MountOptions::parse(["log"]).is_err());
        let l = MountOptions::parse(["log=/var/log/x.log"]).unwrap();
        assert_eq!(
            l.log_file.as_deref(),
            Some(std::path::Path::new("/var/log/x.log"))
        );
        assert!(MountOptions::parse(["mem=1"]).is_err());
        assert!(MountOptions::parse(["recovery=off,ama=off,baseline"]).is_ok());
        let o = MountOptions::parse(["ama=on,peek=off,recycle=off,mem=64M,policy=retry-alternate"])
            .unwrap();
        assert!(o.ama.enabled && !o.ama.peek && !o.ama.recycle);
        assert_eq!(o.ama.mem_bytes, Some(64 << 20));
        assert_eq!(o.policy, Policy::RetryAlternate);
        let b = MountOptions::parse(["baseline"]).unwrap();
        assert!(!b.recovery && !b.ama.enabled);
        assert!(MountOptions::parse(["policy=sometimes"]).is_err());
        let o = MountOptions::parse(["policy=fail-fast"]).unwrap();
        assert!(o.recovery && o.policy == Policy::FailFast);
        assert!(!MountOptions::parse(["baseline"]).unwrap().recovery);
        assert_eq!(MountOptions::default().transport, Transport::Dev);
        for (v, t) in [
            ("uring", Transport::Uring),
            ("auto", Transport::Auto),
            ("dev", Transport::Dev),
            ("dev-own", Transport::DevOwn),
        ] {
            let o = MountOptions::parse([format!("transport={v}").as_str()]).unwrap();
            assert_eq!(o.transport, t);
        }
        assert!(MountOptions::parse(["transport=carrier-pigeon"]).is_err());
        assert!(MountOptions::parse(["transport"]).is_err());
        assert!(!MountOptions::default().writeback_cache);
        assert!(
            MountOptions::parse(["writeback_cache"])
                .unwrap()
                .writeback_cache
        );
        assert!(
            !MountOptions::parse(["writeback_cache,no_writeback_cache"])
                .unwrap()
                .writeback_cache
        );
        assert!(MountOptions::parse(["writeback_cache=1"]).is_err());
        assert_eq!(MountOptions::default().queue_policy, QueuePolicy::Idle);
        assert_eq!(
            MountOptions::parse(["queue_policy=normal"])
                .unwrap()
                .queue_policy,
            QueuePolicy::Normal
        );
        assert!(MountOptions::parse(["queue_policy=fifo"]).is_err());
        assert!(MountOptions::parse(["queue_policy"]).is_err());
    }
}
