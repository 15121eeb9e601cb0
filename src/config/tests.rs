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
    let dir = images(&["hello.bin", "kernel", "rootfs.cpio.gz"]);
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
        name = "mykernel"
        image = "kernel"
        mem = "128M"
        restart = "on-crash"
        load = 0x10000
        mode = "real"
        cmdline = "console=ttyS0 quiet"

        [[vm]]
        name = "rootfs"
        image = "rootfs.cpio.gz"
        role = "data"
        "#,
    )
    .unwrap();
    assert_eq!(config.hypervisor_cmdline, ["log=info", "timeslice=10ms"]);
    assert!(config.hypervisor_warnings.is_empty());
    assert_eq!(config.vms.len(), 3);
    let mine = &config.vms[1];
    assert_eq!(mine.image, dir.path().join("kernel"));
    assert_eq!(
        mine.kernel_cmdline(),
        "name=mykernel mem=128M load=0x10000 mode=real restart=on-crash -- console=ttyS0 quiet"
    );
    assert_eq!(mine.cmdline, ["console=ttyS0", "quiet"]);
    assert_eq!(config.vms[0].iso_file_name(), "hello.bin");
    assert_eq!(mine.iso_file_name(), "mykernel");
    assert_eq!(config.vms[2].iso_file_name(), "rootfs.cpio.gz");
    assert_eq!(config.vms[2].role, ModuleRole::Data);
}

#[test]
fn hypervisor_options_warn_as_the_kernel_does() {
    let dir = images(&[]);
    let config = parse(&dir, "[hypervisor]\ncmdline = \"log=loud frobnicate=1\"\n").unwrap();
    assert_eq!(
        config.hypervisor_warnings,
        [
            "option `log=loud` ignored: expected error|warn|info|debug|trace",
            "unknown option `frobnicate=1` ignored"
        ]
    );
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

/// The kernel parser's reason for refusing a VM's module line.
fn refusal(result: Result<Config, ConfigError>) -> String {
    match result {
        Err(error @ ConfigError::Refused { .. }) => {
            let ConfigError::Refused { vm, reason, .. } = &error else {
                unreachable!()
            };
            assert_eq!(vm, "a");
            assert!(error.to_string().contains(reason.as_str()), "{error}");
            reason.clone()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn values_that_grub_would_mangle_are_refused_per_key() {
    assert_eq!(invalid_key(with_option("load = \"7c 00\"")), "load");
    assert_eq!(invalid_key(with_option("entry = -1")), "entry");
    assert_eq!(invalid_key(with_option("cpu = \"0 1\"")), "cpu");
    assert_eq!(invalid_key(with_option("cmdline = \"a='b'\"")), "cmdline");
    assert_eq!(invalid_key(with_option("restart = \"a;b\"")), "restart");
}

#[test]
fn option_values_are_judged_by_the_kernels_parser() {
    for (extra, reason) in [
        (
            "restart = \"sometimes\"",
            "bad value `restart=sometimes`: expected never|always|on-crash",
        ),
        ("format = \"pe\"", "bad value `format=pe`"),
        ("mode = \"virtual\"", "bad value `mode=virtual`"),
        ("role = \"both\"", "bad value `role=both`"),
        (
            "load = \"0x7g\"",
            "bad value `load=0x7g`: expected an address",
        ),
        (
            "cpu = 1",
            "cpu= is not supported yet: tessera runs every VM on the boot CPU",
        ),
    ] {
        let got = refusal(with_option(extra));
        assert!(got.starts_with(reason), "{extra}: {got}");
    }
}

#[test]
fn debug_exit_becomes_the_module_option_and_needs_a_free_port() {
    let config = with_option("debug-exit = 0xf4").unwrap();
    assert_eq!(
        config.vms[0].kernel_cmdline(),
        "name=a mem=1M debug-exit=0xf4"
    );
    assert_eq!(
        refusal(with_option("debug-exit = 0x3f8")),
        "debug-exit=0x3f8: the port belongs to COM1; choose a free one (0xf4 is usual)"
    );
    assert!(
        refusal(with_option("debug-exit = 0x10000")).starts_with("bad value `debug-exit=0x10000`")
    );
}

/// Configs that the old host grammar and the kernel's disagreed on.
#[test]
fn memory_sizes_follow_the_kernels_grammar() {
    let dir = images(&["a.bin"]);
    let with_mem = |mem: &str| {
        parse(
            &dir,
            &format!("[[vm]]\nname = \"a\"\nimage = \"a.bin\"\nmem = {mem}\n"),
        )
    };
    for refused in ["\"1K\"", "5000", "\"5000\"", "\"1T\"", "\"0\""] {
        let reason = refusal(with_mem(refused));
        assert!(reason.starts_with("bad value `mem="), "{refused}: {reason}");
    }
    for accepted in ["\"8MiB\"", "\"8m\"", "\"16MB\"", "65536", "\"1M\""] {
        assert!(with_mem(accepted).is_ok(), "{accepted} refused");
    }
}

#[test]
fn names_follow_the_kernels_rules() {
    let dir = images(&["a.bin"]);
    let thirty = "a".repeat(30);
    for (name, key_error) in [
        (thirty.as_str(), false),
        ("a/b", false),
        ("a b", true),
        ("a;reboot", true),
        ("a'", true),
        ("$x", true),
    ] {
        let error = parse(
            &dir,
            &format!("[[vm]]\nname = {name:?}\nimage = \"a.bin\"\nmem = \"1M\"\n"),
        )
        .unwrap_err();
        if key_error {
            assert!(
                matches!(error, ConfigError::InvalidOption { key: "name", .. }),
                "{name:?}: {error:?}"
            );
        } else {
            assert!(
                error.to_string().contains("expected 1 to 24 letters"),
                "{name:?}: {error}"
            );
        }
    }
}

#[test]
fn good_option_values_are_kept_as_written() {
    let config = with_option(
        "restart = \"always\"\nformat = \"raw\"\nmode = \"real\"\nload = \"0x7c00\"\n\
         entry = 31744",
    )
    .unwrap();
    assert_eq!(
        config.vms[0].kernel_cmdline(),
        "name=a mem=1M format=raw load=0x7c00 entry=0x7c00 mode=real restart=always"
    );
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
fn images_are_loaded_as_the_kernel_would() {
    let dir = images(&[]);
    // A raw image larger than mem=.
    std::fs::write(dir.path().join("big.bin"), vec![0xf4; 8192]).unwrap();
    let error = parse(
        &dir,
        "[[vm]]\nname = \"big\"\nimage = \"big.bin\"\nmem = \"4K\"\n",
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ConfigError::ImageRefused { .. })
            && message.contains("the image (8 KiB) is larger than the 4 KiB of guest RAM")
            && message.contains("big.bin"),
        "{message}"
    );
    // A real-mode entry point the vCPU could not reach.
    std::fs::write(dir.path().join("one.bin"), b"\xf4").unwrap();
    let error = parse(
        &dir,
        "[[vm]]\nname = \"far\"\nimage = \"one.bin\"\nmem = \"4M\"\nload = 0x200000\n",
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("entry point 0x200000 cannot be reached in real mode"),
        "{error}"
    );
}

/// The kernel puts ACPI tables at 0xE1000 before loading; an image there
/// is refused by `iso` in the kernel's words, not only at boot.
#[test]
fn an_image_over_the_firmware_tables_is_refused() {
    let dir = images(&[]);
    std::fs::write(dir.path().join("low.bin"), vec![0xf4; 8192]).unwrap();
    let error = parse(
        &dir,
        "[[vm]]\nname = \"low\"\nimage = \"low.bin\"\nmem = \"2M\"\nload = 0xe0000\nmode = \"protected\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(error, ConfigError::ImageRefused { .. })
            && error
                .to_string()
                .contains("segment 0xe0000..0xe2000 overlaps the firmware tables at 0xe"),
        "{error}"
    );
    // The same image above the tables loads.
    parse(
        &dir,
        "[[vm]]\nname = \"low\"\nimage = \"low.bin\"\nmem = \"2M\"\nload = 0x100000\nmode = \"protected\"\n",
    )
    .unwrap();
}

#[test]
fn empty_images_and_directories_are_refused() {
    let dir = images(&[]);
    std::fs::write(dir.path().join("empty.bin"), b"").unwrap();
    for role in ["mem = \"1M\"", "role = \"data\""] {
        let error = parse(
            &dir,
            &format!("[[vm]]\nname = \"e\"\nimage = \"empty.bin\"\n{role}\n"),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("the image is empty"),
            "{role}: {error}"
        );
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let error = parse(
        &dir,
        "[[vm]]\nname = \"d\"\nimage = \"sub\"\nmem = \"1M\"\n",
    )
    .unwrap_err();
    assert!(
        error.to_string().ends_with("is a directory, not a file"),
        "{error}"
    );
}

#[test]
fn a_missing_config_names_its_cause_once() {
    let error = Config::load(Path::new("/nonexistent/vms.toml")).unwrap_err();
    let message = format!("{:#}", anyhow::Error::from(error));
    assert_eq!(message.matches("No such file").count(), 1, "{message}");
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

/// A Multiboot (1) kernel of one page that loads at 1 MiB: the header at file
/// offset 0x40 with the a.out addresses (flag 16), so no ELF is needed.
fn multiboot_kernel() -> Vec<u8> {
    const MAGIC: u32 = 0x1bad_b002;
    const FLAGS: u32 = 1 << 16 | 0b11; // a.out addresses, page-aligned modules, memory info
    const LOAD: u32 = 0x10_0000;
    let checksum = 0u32.wrapping_sub(MAGIC).wrapping_sub(FLAGS);
    // header_addr, load_addr, load_end_addr (0: the file's end),
    // bss_end_addr (0: none), entry_addr.
    let fields = [MAGIC, FLAGS, checksum, LOAD + 0x40, LOAD, 0, 0, LOAD + 0x80];
    let mut image = vec![0xf4; 0x1000];
    for (index, field) in fields.iter().enumerate() {
        let at = 0x40 + 4 * index;
        image[at..at + 4].copy_from_slice(&field.to_le_bytes());
    }
    image
}

/// A directory with `mb.bin` (a Multiboot kernel), `counter.bin` (a raw VM)
/// and the data modules `initfs.cpio` and `font.psf` (one byte each).
fn with_modules() -> tempfile::TempDir {
    let dir = images(&["counter.bin", "initfs.cpio", "font.psf"]);
    std::fs::write(dir.path().join("mb.bin"), multiboot_kernel()).unwrap();
    dir
}

/// The data entries `initfs` and `font`, the raw VM `counter`, and the
/// Multiboot VM `mbkernel` with `modules` set to `list` (TOML) and `mem`.
fn modules_config(list: &str, mem: &str) -> String {
    format!(
        "[[vm]]\nname = \"mbkernel\"\nimage = \"mb.bin\"\nmem = \"{mem}\"\n\
         restart = \"never\"\nmodules = {list}\ncmdline = \"console=ttyS0\"\n\
         [[vm]]\nname = \"counter\"\nimage = \"counter.bin\"\nmem = \"1M\"\n\
         [[vm]]\nname = \"initfs\"\nimage = \"initfs.cpio\"\nrole = \"data\"\n\
         [[vm]]\nname = \"font\"\nimage = \"font.psf\"\nrole = \"data\"\n"
    )
}

#[test]
fn modules_go_on_the_module_line_in_order() {
    let dir = with_modules();
    // The data modules come after the VM that names them, as the kernel allows.
    let config = parse(&dir, &modules_config(r#"["initfs", "font"]"#, "4M")).unwrap();
    assert_eq!(
        config.vms[0].kernel_cmdline(),
        "name=mbkernel mem=4M restart=never modules=initfs,font -- console=ttyS0"
    );
    let config = parse(&dir, &modules_config(r#"["font", "initfs"]"#, "4M")).unwrap();
    assert!(
        config.vms[0]
            .kernel_cmdline()
            .contains(" modules=font,initfs "),
        "{}",
        config.vms[0].kernel_cmdline()
    );
}

#[test]
fn grub_cfg_hands_the_modules_to_the_kernel() {
    let dir = with_modules();
    let config = parse(&dir, &modules_config(r#"["initfs", "font"]"#, "4M")).unwrap();
    let cfg = crate::grubcfg::render(crate::grubcfg::TEMPLATE, &config).unwrap();
    assert!(
        cfg.contains(
            "module2 /guests/mbkernel.bin name=mbkernel mem=4M restart=never \
             modules=initfs,font -- console=ttyS0\n"
        ),
        "{cfg}"
    );
    assert!(
        cfg.contains("module2 /guests/initfs.cpio name=initfs role=data\n"),
        "{cfg}"
    );
}

#[test]
fn modules_must_name_data_entries_of_the_config() {
    let dir = with_modules();
    let error = parse(&dir, &modules_config(r#"["initfs", "fonts"]"#, "4M")).unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnknownModule { vm, module } if vm == "mbkernel" && module == "fonts"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "vm \"mbkernel\": modules names \"fonts\", which is not in this config"
    );

    let error = parse(&dir, &modules_config(r#"["counter"]"#, "4M")).unwrap_err();
    assert!(
        matches!(&error, ConfigError::ModuleIsVm { vm, module } if vm == "mbkernel" && module == "counter"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "vm \"mbkernel\": modules names \"counter\", which is a VM, not a data module \
         (role = \"data\")"
    );
    // Itself included.
    let error = parse(&dir, &modules_config(r#"["mbkernel"]"#, "4M")).unwrap_err();
    assert!(matches!(error, ConfigError::ModuleIsVm { .. }), "{error:?}");
}

#[test]
fn an_empty_or_malformed_modules_list_is_refused() {
    let dir = with_modules();
    let error = parse(&dir, &modules_config("[]", "4M")).unwrap_err();
    assert!(
        matches!(
            &error,
            ConfigError::InvalidOption { vm, key: "modules", .. } if vm == "mbkernel"
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("vm \"mbkernel\": modules: the list is empty"),
        "{error}"
    );
    for bad in [r#"["init fs"]"#, r#"["initfs,font"]"#] {
        let error = parse(&dir, &modules_config(bad, "4M")).unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidOption { key: "modules", .. }),
            "{bad}: {error:?}"
        );
    }
    // GRUB-safe, but not a name the kernel's parser accepts.
    let error = parse(&dir, &modules_config(r#"["a/b"]"#, "4M")).unwrap_err();
    assert!(
        matches!(error, ConfigError::Refused { .. })
            && error.to_string().contains("bad value `modules=a/b`"),
        "{error}"
    );
    let error = parse(&dir, &modules_config(r#""initfs""#, "4M")).unwrap_err();
    assert!(matches!(error, ConfigError::Parse { .. }), "{error:?}");
}

#[test]
fn a_data_entry_takes_no_modules() {
    let dir = with_modules();
    let error = parse(
        &dir,
        "[[vm]]\nname = \"font\"\nimage = \"font.psf\"\nrole = \"data\"\n\
         [[vm]]\nname = \"initfs\"\nimage = \"initfs.cpio\"\nrole = \"data\"\n\
         modules = [\"font\"]\n",
    )
    .unwrap_err();
    assert!(
        matches!(&error, ConfigError::NotForData { vm, key: "modules" } if vm == "initfs"),
        "{error:?}"
    );
}

#[test]
fn modules_are_loaded_with_the_kernel_as_the_kernel_would() {
    let dir = with_modules();
    // 3 MiB of initfs fits beside the kernel in 8 MiB, not in 4 MiB.
    std::fs::write(dir.path().join("initfs.cpio"), vec![0; 3 << 20]).unwrap();
    assert!(parse(&dir, &modules_config(r#"["initfs", "font"]"#, "8M")).is_ok());
    let error = parse(&dir, &modules_config(r#"["initfs", "font"]"#, "4M")).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, ConfigError::ImageRefused { vm, .. } if vm == "mbkernel")
            && message.contains("module 0x101000..0x401000 does not fit in 4 MiB of guest RAM")
            && message.contains("mb.bin"),
        "{message}"
    );
    // The next module is placed after it, and it is the one that no longer fits.
    std::fs::write(dir.path().join("initfs.cpio"), vec![0; (3 << 20) - 0x2000]).unwrap();
    std::fs::write(dir.path().join("font.psf"), vec![0; 0x2000]).unwrap();
    let error = parse(&dir, &modules_config(r#"["initfs", "font"]"#, "4M")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("module 0x3ff000..0x401000 does not fit in 4 MiB of guest RAM"),
        "{error}"
    );
}

#[test]
fn modules_need_a_multiboot_kernel() {
    let dir = with_modules();
    let error = parse(
        &dir,
        "[[vm]]\nname = \"counter\"\nimage = \"counter.bin\"\nmem = \"1M\"\n\
         modules = [\"initfs\"]\n\
         [[vm]]\nname = \"initfs\"\nimage = \"initfs.cpio\"\nrole = \"data\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(error, ConfigError::ImageRefused { .. })
            && error
                .to_string()
                .contains("modules= is for Multiboot kernels"),
        "{error}"
    );
}

/// A bzImage the kernel's loader accepts: protocol 2.15, 64-bit entry,
/// relocatable, 16 MiB preferred, 4 MiB init_size, two setup sectors.
fn bzimage() -> Vec<u8> {
    let mut image = vec![0u8; 3 * 512 + 0x1000];
    let mut put = |offset: usize, bytes: &[u8]| {
        image[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(0x1f1, &[2]); // setup_sects
    put(0x1fe, &[0x55, 0xaa]);
    put(0x200, &[0xeb, 0x6a]); // the header ends at 0x26c
    put(0x202, b"HdrS");
    put(0x206, &0x020fu16.to_le_bytes());
    put(0x211, &[0x01]); // LOADED_HIGH
    put(0x22c, &0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    put(0x230, &0x20_0000u32.to_le_bytes()); // kernel_alignment
    put(0x234, &[1]); // relocatable_kernel
    put(0x236, &0x0001u16.to_le_bytes()); // XLF_KERNEL_64
    put(0x238, &2047u32.to_le_bytes()); // cmdline_size
    put(0x258, &0x100_0000u64.to_le_bytes()); // pref_address
    put(0x260, &0x40_0000u32.to_le_bytes()); // init_size
    image
}

/// A directory with `vmlinuz` (a bzImage), `initrd.cpio` and `mb.bin`.
fn with_linux() -> tempfile::TempDir {
    let dir = images(&["initrd.cpio"]);
    std::fs::write(dir.path().join("vmlinuz"), bzimage()).unwrap();
    std::fs::write(dir.path().join("mb.bin"), multiboot_kernel()).unwrap();
    dir
}

fn linux_vm(name: &str, mem: &str, initrd: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nimage = \"vmlinuz\"\nmem = \"{mem}\"\n\
         initrd = \"{initrd}\"\ncmdline = \"console=ttyS0 quiet\"\n"
    )
}

#[test]
fn an_initrd_becomes_a_data_module_and_the_option_naming_it() {
    let dir = with_linux();
    let config = parse(&dir, &linux_vm("linux", "64M", "initrd.cpio")).unwrap();
    assert_eq!(config.vms.len(), 2);
    assert_eq!(
        config.vms[0].kernel_cmdline(),
        "name=linux mem=64M initrd=linux-initrd -- console=ttyS0 quiet"
    );
    let data = &config.vms[1];
    assert_eq!(data.role, ModuleRole::Data);
    assert_eq!(data.image, dir.path().join("initrd.cpio"));
    assert_eq!(data.kernel_cmdline(), "name=linux-initrd role=data");
    let cfg = crate::grubcfg::render(crate::grubcfg::TEMPLATE, &config).unwrap();
    assert!(
        cfg.contains("module2 /guests/linux-initrd.cpio name=linux-initrd role=data\n"),
        "{cfg}"
    );
}

#[test]
fn vms_sharing_an_initrd_share_its_module() {
    let dir = with_linux();
    let text = format!(
        "{}{}[[vm]]\nname = \"counter\"\nimage = \"mb.bin\"\nmem = \"4M\"\n",
        linux_vm("linux-a", "64M", "initrd.cpio"),
        linux_vm("linux-b", "64M", "./initrd.cpio")
    );
    let config = parse(&dir, &text).unwrap();
    let names: Vec<&str> = config.vms.iter().map(|vm| vm.name.as_str()).collect();
    // One module for one file (however the path is written), after the
    // file's own entries, named after the first VM that gives it.
    assert_eq!(names, ["linux-a", "linux-b", "counter", "linux-a-initrd"]);
    assert!(config.vms[1]
        .kernel_cmdline()
        .contains(" initrd=linux-a-initrd "));
    std::fs::write(dir.path().join("other.cpio"), b"x").unwrap();
    let text = format!(
        "{}{}",
        linux_vm("linux-a", "64M", "initrd.cpio"),
        linux_vm("linux-b", "64M", "other.cpio")
    );
    let config = parse(&dir, &text).unwrap();
    assert_eq!(config.vms.len(), 4);
    assert!(config.vms[1]
        .kernel_cmdline()
        .contains(" initrd=linux-b-initrd "));
}

#[test]
fn initrd_refusals_name_the_vm() {
    let dir = with_linux();
    // An initrd larger than the VM can hold beside its kernel: the kernel's words.
    std::fs::write(dir.path().join("big.cpio"), vec![0; 16 << 20]).unwrap();
    let error = parse(&dir, &linux_vm("linux", "32M", "big.cpio")).unwrap_err();
    assert!(
        matches!(&error, ConfigError::ImageRefused { vm, .. } if vm == "linux")
            && error
                .to_string()
                .contains("the initrd (16 MiB) does not fit"),
        "{error}"
    );
    assert!(parse(&dir, &linux_vm("linux", "64M", "big.cpio")).is_ok());
    // A missing file.
    let error = parse(&dir, &linux_vm("linux", "64M", "nothere.cpio")).unwrap_err();
    assert!(
        matches!(&error, ConfigError::MissingImage { vm, .. } if vm == "linux-initrd"),
        "{error}"
    );
    // A name that leaves no room for "-initrd".
    let error = parse(
        &dir,
        &linux_vm("a-name-of-twenty-chars", "64M", "initrd.cpio"),
    )
    .unwrap_err();
    assert!(matches!(error, ConfigError::InitrdName { .. }), "{error}");
    // Not for a Multiboot kernel, nor for a data entry.
    let error = parse(
        &dir,
        "[[vm]]\nname = \"mb\"\nimage = \"mb.bin\"\nmem = \"4M\"\ninitrd = \"initrd.cpio\"\n",
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("initrd= is for Linux kernels, and this is a Multiboot kernel"),
        "{error}"
    );
    let error = parse(
        &dir,
        "[[vm]]\nname = \"d\"\nimage = \"initrd.cpio\"\nrole = \"data\"\ninitrd = \"initrd.cpio\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(&error, ConfigError::NotForData { key: "initrd", .. }),
        "{error:?}"
    );
    // A bzImage too large for its mem=.
    let error = parse(&dir, &linux_vm("linux", "4M", "initrd.cpio")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the kernel needs 4 MiB (init_size)"),
        "{error}"
    );
}

/// A config file found through a relative path (`--config guest-blobs/x.toml`
/// from the repository): the initrd's data module names the file once,
/// relative to the config's folder like every image, not joined twice.
#[test]
fn an_initrd_next_to_a_config_given_by_a_relative_path() {
    let dir = with_linux();
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd.components().count() - 1;
    let mut relative = PathBuf::new();
    for _ in 0..ups {
        relative.push("..");
    }
    relative.push(dir.path().strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    let config = Config::parse(
        &linux_vm("linux", "64M", "initrd.cpio"),
        &relative,
        &relative.join("linux.toml"),
    )
    .unwrap();
    assert_eq!(config.vms[1].image, relative.join("initrd.cpio"));
}
