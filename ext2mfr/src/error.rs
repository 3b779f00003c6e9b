//! File system errors, each mapping to one errno.

use crate::format::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("no space left on device")]
    NoSpace,
    #[error("file name too long")]
    NameTooLong,
    #[error("file too large")]
    TooBig,
    #[error("too many links")]
    TooManyLinks,
    #[error("read-only file system")]
    ReadOnly,
    #[error("invalid argument")]
    Invalid,
    #[error("permission denied")]
    Access,
    #[error("operation not permitted")]
    Perm,
    #[error("out of memory")]
    NoMem,
    #[error("no such attribute")]
    NoData,
    #[error("result too large for the buffer")]
    Range,
    #[error("operation not supported")]
    NotSupported,
    /// fallocate on a FIFO (the VFS answers so before a file system is asked).
    #[error("illegal seek")]
    IllegalSeek,
    /// fallocate on a device node, socket or symlink (likewise).
    #[error("no such device")]
    NoDevice,
    /// A corrupt on-disk structure found at run time: EIO for this request.
    #[error("corrupt file system: {0}")]
    Corrupt(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The request was rolled back after a fault and not retried (further).
    #[error("request rolled back after a fault: {0}")]
    Fault(String),
}

pub type Result<T> = std::result::Result<T, FsError>;

impl FsError {
    pub fn errno(&self) -> i32 {
        use libc::*;
        match self {
            FsError::NotFound => ENOENT,
            FsError::Exists => EEXIST,
            FsError::NotEmpty => ENOTEMPTY,
            FsError::NotDir => ENOTDIR,
            FsError::IsDir => EISDIR,
            FsError::NoSpace => ENOSPC,
            FsError::NameTooLong => ENAMETOOLONG,
            FsError::TooBig => EFBIG,
            FsError::TooManyLinks => EMLINK,
            FsError::ReadOnly => EROFS,
            FsError::Invalid => EINVAL,
            FsError::Access => EACCES,
            FsError::Perm => EPERM,
            FsError::NoMem => ENOMEM,
            FsError::NoData => ENODATA,
            FsError::Range => ERANGE,
            FsError::NotSupported => EOPNOTSUPP,
            FsError::IllegalSeek => ESPIPE,
            FsError::NoDevice => ENODEV,
            FsError::Corrupt(_) | FsError::Fault(_) => EIO,
            FsError::Io(e) => e.raw_os_error().unwrap_or(EIO),
        }
    }
}

impl From<FormatError> for FsError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Io(e) => FsError::Io(e),
            other => FsError::Corrupt(other.to_string()),
        }
    }
}

/// Build a `Corrupt` error and log it: a corrupt structure found at run time
/// is an EIO for the request and a logged error, never a crash.
pub fn corrupt(msg: impl Into<String>) -> FsError {
    let msg = msg.into();
    log::error!("corrupt file system: {msg}");
    FsError::Corrupt(msg)
}
