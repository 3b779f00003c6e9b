//! Checks on the directory a workload is pointed at: it must exist, be a
//! directory and be writable, or the workload refuses with a clear error.

use std::path::Path;

pub fn check_writable_dir(p: &Path) -> Result<(), String> {
    let md = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if !md.is_dir() {
        return Err(format!("{} is not a directory", p.display()));
    }
    let probe = p.join(format!(".workload-probe-{}", std::process::id()));
    std::fs::write(&probe, b"x").map_err(|e| format!("{} is not writable: {e}", p.display()))?;
    std::fs::remove_file(&probe).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(())
}
