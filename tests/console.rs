//! The operator's console, driven by a scripted session (`boot --input`):
//! focus moves with Ctrl-A three times, keys reach only the VM with the
//! focus (the echo guest, then a Linux shell), and the tessera shell lists,
//! pauses, resumes, restarts and kills VMs, refuses an unknown command,
//! stays after the last VM stopped (`on-idle=shell`) and powers the machine
//! off. Once in Bochs (VMX) and once in QEMU (SVM),
//! with the same checks (guest-blobs/console.toml).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The session. Each `@wait` follows what the step before it makes tessera
/// or a guest print; the @sleep while echo is paused is long enough for
/// several of its 250 ms ticks, had it not been paused.
const SCRIPT: &str = r#"@timeout 600
@wait console: type here
@wait linux-guest: shell: a shell on the console
vms
@wait RESTARTS
@send \x01\x01\x01
@wait console focus on vm echo
hello echo
@wait echo: you typed "hello echo"
@send \x01\x01\x01
@wait console focus on vm echo2
@send \x01\x01\x01
@wait console focus on vm ticker
@send \x01\x01\x01
@wait console focus on vm crasher
@send \x01\x01\x01
@wait console focus on vm linux
uname -a
@wait GNU/Linux
exit
@wait vm linux: powered off
@send \x01\x01\x01
@wait console focus on the tessera shell
@wait echo: tick
pause echo
@wait vm echo paused
@sleep 3000
resume echo
@wait vm echo resumed
@wait echo: tick
info crasher
@wait console input dropped
bogus
@wait unknown command
restart crasher
@wait vm crasher restarted
kill echo2
@wait vm echo2 killed
kill echo
@wait vm echo killed
vms
@wait RESTARTS
poweroff
@wait the operator's poweroff
"#;

fn session(engine: &str) {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    linux_guest();
    let iso = shared_iso(&ISO, "console.toml", "console.iso");
    let script = scratch(&format!("console-{engine}.script"));
    std::fs::write(&script, SCRIPT).unwrap();
    let log = scratch(&format!("console-{engine}.serial.log"));
    let mut command = Command::new(TOOL);
    command
        .args(["boot".as_ref(), iso.as_os_str()])
        .args(["--engine", engine, "--timeout", "900", "--mem", "512"])
        .arg("--input")
        .arg(&script)
        .arg("--log")
        .arg(&log);
    if engine.starts_with("qemu") {
        command.arg("--count-instructions");
    }
    let output = run(&mut command);
    let lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    let mut c = Checks::new(&lines);
    c.check(
        output.status.code() == Some(0),
        format!("`tessera boot` exited with {}", output.status),
    );
    c.has(&["console: type here; Ctrl-A three times moves the focus"]);

    // `vms`: a table with every VM.
    c.has(&["ID", "NAME", "STATE", "MEMORY", "EXITS", "RESTARTS"]);
    for vm in ["echo", "echo2", "ticker", "crasher", "linux"] {
        c.check(
            lines
                .iter()
                .any(|l| l.split_whitespace().nth(1) == Some(vm) && l.contains(" MiB")),
            format!("`vms` lists no row for {vm}"),
        );
    }

    // Focus, and keys reaching only the focused VM.
    c.before(
        &["tessera: console focus on vm echo"],
        &["    echo | echo: you typed \"hello echo\""],
        "echo got its line after it had the focus",
    );
    c.check(
        !lines.iter().any(|l| {
            l.contains("hello echo") && !l.starts_with("    echo | ") && !l.starts_with("tessera")
        }),
        "another VM saw the line typed to echo",
    );
    c.before(
        &["tessera: console focus on vm linux"],
        &["   linux | Linux ", "6.1.0-", "GNU/Linux"],
        "uname -a answered in the Linux shell after the focus moved there",
    );
    c.check(
        !lines
            .iter()
            .any(|l| l.contains("uname") && l.starts_with("    echo | ")),
        "echo saw the keys typed to linux",
    );
    c.has(&["tessera: console focus on the tessera shell"]);

    // pause stops echo's ticks until resume.
    let paused = c.has(&["tessera: vm echo paused"]);
    let resumed = c.has(&["tessera: vm echo resumed"]);
    if let (Some(paused), Some(resumed)) = (paused, resumed) {
        c.check(
            !lines[paused..resumed]
                .iter()
                .any(|l| l.contains("echo | echo: tick")),
            "echo ticked while paused",
        );
        c.check(
            lines[resumed..]
                .iter()
                .any(|l| l.contains("echo | echo: tick")),
            "echo did not tick after resume",
        );
    }

    // info, an unknown command, restart, kill, poweroff.
    c.has(&["vm crasher (id 4): "]);
    c.has(&["  exits ("]);
    c.has(&["console input dropped "]);
    c.has(&["unknown command \"bogus\": type help for the list"]);
    c.has(&["tessera: vm crasher restarted"]);
    c.has(&["tessera: vm echo2 killed"]);
    c.has(&["tessera: all VMs have stopped"]);
    c.summary("echo2", "killed", "killed by the operator");
    // on-idle=shell: with every VM stopped the shell stayed for `vms` and
    // `poweroff`.
    c.summary("echo", "killed", "killed by the operator");
    c.has(&["tessera: on-idle=shell: the shell stays when every VM has stopped"]);
    let killed = c.has(&["tessera: vm echo killed"]);
    if let Some(killed) = killed {
        c.check(
            lines[killed..]
                .iter()
                .any(|l| l.split_whitespace().nth(1) == Some("echo") && l.contains("stopped")),
            "no `vms` after every VM had stopped",
        );
    }
    c.summary("linux", "off", "powered off");
    c.has(&["tessera: powering off (the operator's poweroff)"]);
    c.finish(&text(&output.stderr));
}

#[test]
fn a_scripted_console_session_drives_the_vms() {
    session("bochs");
}

#[test]
fn a_scripted_console_session_drives_the_vms_in_qemu() {
    session("qemu");
}
