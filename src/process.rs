//! Starting an emulator so that it can always be stopped again, and stopping it
//! with everything it started.
//!
//! The emulator gets its own process group (so a terminal's Ctrl-C reaches only
//! this tool, which then cleans up in order) and dies with this tool if the tool
//! is killed outright. Bochs runs under `script`, which puts it in a session of
//! its own: killing the process group alone would miss it, so the whole tree of
//! descendants is found through /proc and killed.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Spawns `command` in a new process group, to be killed if this process dies.
pub fn spawn_supervised(command: &mut Command) -> io::Result<Child> {
    command.process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // which is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Kills `child`, its process group and every descendant, then reaps the child
/// and waits (briefly) until the others are gone.
pub fn kill_tree(child: &mut Child) {
    let root = child.id() as libc::pid_t;
    // Collected before anything dies: once `script` is gone, Bochs is reparented
    // and no longer findable as its descendant.
    let descendants = descendants_of(root);
    // SAFETY: kill(2) with a negative pid signals the process group that
    // `spawn_supervised` created for this child; it has no memory effects here.
    unsafe {
        libc::kill(-root, libc::SIGKILL);
    }
    for &pid in &descendants {
        // SAFETY: as above, for one process; the pid was our descendant a moment
        // ago, and SIGKILL cannot be caught.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();

    let deadline = Instant::now() + Duration::from_secs(3);
    while descendants.iter().any(|&pid| is_alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// All descendants of `root` (children, their children, …) from /proc.
pub fn descendants_of(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut children: HashMap<libc::pid_t, Vec<libc::pid_t>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(parent) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| parent_pid(&stat))
            {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            pending.push(child);
        }
    }
    found
}

/// The parent pid from the text of /proc/PID/stat: `pid (comm) state ppid …`.
/// `comm` may contain spaces and parentheses, so parsing starts after the last `)`.
fn parent_pid(stat: &str) -> Option<libc::pid_t> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is a live process (a zombie counts as gone: it runs nothing).
fn is_alive(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        assert_eq!(parent_pid("42 (bochs-bin) S 41 42 42 0"), Some(41));
        assert_eq!(parent_pid("42 (a) b (c)) R 7 42"), Some(7));
        assert_eq!(parent_pid("garbage"), None);
    }

    #[test]
    fn kills_a_grandchild_in_another_session() {
        // `setsid` puts the sleeper where killing our process group cannot reach,
        // like Bochs under `script`.
        let mut command = Command::new("sh");
        command.args(["-c", "setsid sleep 600 & wait"]);
        let mut child = spawn_supervised(&mut command).unwrap();
        let root = child.id() as libc::pid_t;
        let deadline = Instant::now() + Duration::from_secs(5);
        let sleeper = loop {
            if let Some(&pid) = descendants_of(root).first() {
                break pid;
            }
            assert!(Instant::now() < deadline, "the grandchild never appeared");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(is_alive(sleeper));
        kill_tree(&mut child);
        assert!(!is_alive(sleeper), "pid {sleeper} survived");
    }
}
