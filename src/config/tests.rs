//! Tests of config parsing and validation.

use super::*;

/// A directory holding the image files that configs under test refer to.
fn images(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::write(dir.path().join(name), b"\xf4").unwrap();
    }
    dir
}

fn parse(dir: &tempfile::TempDir, text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, dir.path(), Path::new("vms.toml"))
}

#[test]
fn parses_the_documented_example() {
    let dir = images(&["hello.bin", "vmlinuz", "rootfs.cpio.gz"]);
    let config = parse(
        &dir,
        r#"
        [hypervisor]
        cmdline = "log=info timeslice=10ms"

        [[vm]]
        name = "hello"
        image = "hello.bin"
        mem = "1M"

        [[vm]]
        name = "linux"
        image = "vmlinuz"
        mem = "128M"
        initrd = "rootfs"
        restart = "on-crash"
        load = 0x100000
        cmdline = "console=ttyS0 quiet"

        [[vm]]
        name = "rootfs"
        image = "rootfs.cpio.gz"
        role = "data"
        "#,
    )
    .unwrap();
    assert_eq!(config.hypervisor_cmdline, ["log=info", "timeslice=10ms"]);
    assert_eq!(config.vms.len(), 3);
    let linux = &config.vms[1];
    assert_eq!(linux.image, dir.path().join("vmlinuz"));
    assert_eq!(linux.mem.as_deref(), Some("128M"));
    assert_eq!(linux.load.as_deref(), Some("0x100000"));
    assert_eq!(linux.restart, Some(Restart::OnCrash));
    assert_eq!(linux.cmdline, ["console=ttyS0", "quiet"]);
    assert_eq!(config.vms[0].iso_file_name(), "hello.bin");
    assert_eq!(linux.iso_file_name(), "linux");
    assert_eq!(config.vms[2].iso_file_name(), "rootfs.cpio.gz");
}

#[test]
fn zero_vms_and_no_hypervisor_table_are_fine() {
    let dir = images(&[]);
    let config = parse(&dir, "").unwrap();
    assert!(config.vms.is_empty());
    assert!(config.hypervisor_cmdline.is_empty());
}

#[test]
fn unknown_keys_are_named() {
    let dir = images(&["a.bin"]);
    let error = parse(
        &dir,
        "[[vm]]\nname = \"a\"\nimage = \"a.bin\"\nmem = \"1M\"\nmemory = \"2M\"\n",
    )
    .unwrap_err();
    assert!(matches!(error, ConfigError::Parse { .. }), "{error:?}");
    assert!(error.to_string().contains("memory"), "{error}");

    let error = parse(&dir, "[hypervisor]\ncmd_line = \"x\"\n").unwrap_err();
    assert!(error.to_string().contains("cmd_line"), "{error}");

    let error = parse(&dir, "[[vms]]\nname = \"a\"\n").unwrap_err();
    assert!(error.to_string().contains("vms"), "{error}");
}

#[test]
fn a_missing_image_names_the_vm_and_the_path() {
    let dir = images(&[]);
    let error = parse(
        &dir,
        "[[vm]]\nname = \"ghost\"\nimage = \"nope.bin\"\nmem = \"1M\"\n",
    )
    .unwrap_err();
    match &error {
        ConfigError::MissingImage { vm, path } => {
            assert_eq!(vm, "ghost");
            assert_eq!(path, &dir.path().join("nope.bin"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("ghost") && message.contains("nope.bin"),
        "{message}"
    );
}

#[test]
fn duplicate_names_are_rejected() {
    let dir = images(&["a.bin", "b.bin"]);
    let error = parse(
        &dir,
        "[[vm]]\nname = \"x\"\nimage = \"a.bin\"\nmem = \"1M\"\n\
         [[vm]]\nname = \"x\"\nimage = \"b.bin\"\nmem = \"1M\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(&error, ConfigError::DuplicateName { name } if name == "x"),
        "{error:?}"
    );
}

#[test]
fn default_names_come_from_the_image_and_may_collide() {
    let dir = images(&["a.bin", "a.elf"]);
    let config = parse(&dir, "[[vm]]\nimage = \"a.bin\"\nmem = \"1M\"\n").unwrap();
    assert_eq!(config.vms[0].name, "a");
    let error = parse(
        &dir,
        "[[vm]]\nimage = \"a.bin\"\nmem = \"1M\"\n[[vm]]\nimage = \"a.elf\"\nmem = \"1M\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(error, ConfigError::DuplicateName { .. }),
        "{error:?}"
    );
}

/// One VM with `extra` added to an otherwise valid table.
fn with_option(extra: &str) -> Result<Config, ConfigError> {
    let dir = images(&["a.bin"]);
    parse(
        &dir,
        &format!("[[vm]]\nname = \"a\"\nimage = \"a.bin\"\nmem = \"1M\"\n{extra}\n"),
    )
}

fn invalid_key(result: Result<Config, ConfigError>) -> &'static str {
    match result {
        Err(ConfigError::InvalidOption { vm, key, .. }) => {
            assert_eq!(vm, "a");
            key
        }
        other => panic!("expected an invalid option, got {other:?}"),
    }
}

#[test]
fn option_syntax_is_checked_per_key() {
    assert_eq!(
        invalid_key(with_option("restart = \"sometimes\"")),
        "restart"
    );
    assert_eq!(invalid_key(with_option("format = \"pe\"")), "format");
    assert_eq!(invalid_key(with_option("mode = \"virtual\"")), "mode");
    assert_eq!(invalid_key(with_option("role = \"both\"")), "role");
    assert_eq!(invalid_key(with_option("load = \"7c00\"")), "load");
    assert_eq!(invalid_key(with_option("entry = -1")), "entry");
    assert_eq!(invalid_key(with_option("cpu = \"0 1\"")), "cpu");
    assert_eq!(invalid_key(with_option("cmdline = \"a='b'\"")), "cmdline");
    let dir = images(&["a.bin"]);
    let error = parse(
        &dir,
        "[[vm]]\nname = \"a\"\nimage = \"a.bin\"\nmem = \"1MB\"\n",
    );
    assert_eq!(invalid_key(error), "mem");
}

#[test]
fn good_option_values_are_kept_as_written() {
    let config = with_option(
        "restart = \"always\"\nformat = \"raw\"\nmode = \"real\"\nload = \"0x7c00\"\n\
         entry = 31744\ncpu = 1",
    )
    .unwrap();
    let vm = &config.vms[0];
    assert_eq!(vm.format, Some(Format::Raw));
    assert_eq!(vm.mode, Some(Mode::Real));
    assert_eq!(vm.load.as_deref(), Some("0x7c00"));
    assert_eq!(vm.entry.as_deref(), Some("0x7c00"));
    assert_eq!(vm.cpu.as_deref(), Some("1"));
}

#[test]
fn names_that_could_inject_grub_syntax_are_rejected() {
    let dir = images(&["a.bin"]);
    for bad in ["a b", "a;reboot", "a'", "$x", "-a"] {
        let error = parse(
            &dir,
            &format!("[[vm]]\nname = {bad:?}\nimage = \"a.bin\"\nmem = \"1M\"\n"),
        )
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidOption { key: "name", .. }),
            "{bad:?}: {error:?}"
        );
    }
}

#[test]
fn a_vm_needs_mem_and_data_takes_no_vm_options() {
    let dir = images(&["a.bin"]);
    let error = parse(&dir, "[[vm]]\nname = \"a\"\nimage = \"a.bin\"\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::MissingOption { key: "mem", .. }),
        "{error:?}"
    );
    let error = parse(
        &dir,
        "[[vm]]\nname = \"d\"\nimage = \"a.bin\"\nrole = \"data\"\nmem = \"1M\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(error, ConfigError::NotForData { key: "mem", .. }),
        "{error:?}"
    );
}

#[test]
fn initrd_must_name_a_data_module() {
    let dir = images(&["k", "r"]);
    let vm = "[[vm]]\nname = \"k\"\nimage = \"k\"\nmem = \"8M\"\ninitrd = \"r\"\n";
    let error = parse(&dir, vm).unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::BadInitrd {
                problem: InitrdProblem::NoSuchModule,
                ..
            }
        ),
        "{error:?}"
    );
    let as_vm = format!("{vm}[[vm]]\nname = \"r\"\nimage = \"r\"\nmem = \"1M\"\n");
    let error = parse(&dir, &as_vm).unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::BadInitrd {
                problem: InitrdProblem::NotData,
                ..
            }
        ),
        "{error:?}"
    );
    let as_data = format!("{vm}[[vm]]\nname = \"r\"\nimage = \"r\"\nrole = \"data\"\n");
    assert!(parse(&dir, &as_data).is_ok());
}

#[test]
fn hypervisor_cmdline_is_checked() {
    let dir = images(&[]);
    let error = parse(&dir, "[hypervisor]\ncmdline = \"log=\\\"x\\\"\"\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::HypervisorCmdline(_)),
        "{error:?}"
    );
}

#[test]
fn wrong_value_types_say_what_was_expected() {
    let error = with_option("load = true").unwrap_err();
    assert!(
        error.to_string().contains("a number or a string"),
        "{error}"
    );
}

#[test]
fn image_extensions() {
    assert_eq!(image_extension(Path::new("x/hello.bin")), ".bin");
    assert_eq!(image_extension(Path::new("vmlinuz")), "");
    assert_eq!(image_extension(Path::new("rootfs.cpio.gz")), ".cpio.gz");
    assert_eq!(image_extension(Path::new("linux-6.1.0.elf")), ".elf");
    assert_eq!(image_extension(Path::new(".hidden")), "");
    assert_eq!(image_extension(Path::new("a.b c")), "");
}
