//! A Debian 13 host: the package built from this tree installs with apt
//! into a trixie system the test makes (mmdebstrap from the Debian mirror
//! of the host's apt sources, every dependency resolved from trixie),
//! enables its timer there, and, run in that system (systemd-nspawn,
//! no network), the installed program answers `help` and imports an
//! installer image; booted, the system has the timer active and its
//! service runs; the main job runs there with trixie's tools (a trixie
//! template from the mirror, a clone of it booted by trixie's qemu to its
//! login prompt); trixie's lintian passes both packages; and the package
//! builds there with trixie's own Rust toolchain (cargo-web), shipping
//! the same files.
//!
//! Needs root, mmdebstrap, systemd-container and the mirror
//! (scripts/setup.sh), and the package build shared with tests/package.rs.

mod common;

use common::package::{built, cmd, must};
use common::realm::run_bounded;
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `systemd-nspawn` on the trixie system at `root` with `flags`
/// (`--pipe`, `--private-network`, `-b`...); the caller adds `--` and
/// what to run.
fn nspawn(root: &Path, flags: &[&str]) -> Command {
    let mut c = cmd("systemd-nspawn", &["-q", "--register=no", "--keep-unit"]);
    c.args(flags).arg("-D").arg(root);
    c
}

/// Runs `args` in the trixie system at `root`, without network, its
/// output on pipes of ours (not nspawn's terminal).
fn inside(root: &Path, args: &[&str]) -> Out {
    let mut c = nspawn(root, &["--pipe", "--private-network"]);
    c.arg("--").args(args);
    must(c, Duration::from_secs(300))
}

/// Writes an executable script of the test's into the trixie system.
fn script(root: &Path, at: &str, text: &str) {
    let path = root.join(at.trim_start_matches('/'));
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn the_package_installs_and_works_on_a_debian_13_host() {
    let b = built();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("trixie");
    let (host, dir) = host_mirror();
    let t = Instant::now();
    // A trixie host: systemd, and lintian for the check below.
    must(
        cmd(
            "mmdebstrap",
            &[
                "--variant=minbase",
                "--mode=root",
                "--include=systemd,lintian",
                "trixie",
                root.to_str().unwrap(),
                &format!("deb http://{host}{dir} trixie main"),
            ],
        ),
        Duration::from_secs(900),
    );
    eprintln!("BENCH trixie system with systemd and lintian (mmdebstrap): {:.0} s", t.elapsed().as_secs_f64());
    // The administrator's step: apt installs the package there, pulling
    // its dependencies (remctl-server, xorriso, adduser...) from trixie.
    fs::copy(b.dir.join(b.deb()), root.join("root").join(b.deb())).unwrap();
    let deb = format!("/root/{}", b.deb());
    // (mmdebstrap leaves no package lists behind: apt-get update first.)
    // With what a qemu host adds (the package's Recommends and Suggests for
    // the qemu driver), for the main job below.
    let tools = ["mmdebstrap", "e2fsprogs", "grub-pc-bin", "qemu-system-x86"];
    let install: Vec<&str> = ["apt-get", "install", "-y", "-q", "--no-install-recommends", &deb].into_iter().chain(tools).collect();
    for args in [&["apt-get", "update", "-q"][..], &install] {
        let mut apt = nspawn(&root, &[]);
        apt.arg("--").args(args);
        must(apt, Duration::from_secs(600));
    }

    let os = fs::read_to_string(root.join("etc/os-release")).unwrap();
    assert!(os.contains("VERSION_CODENAME=trixie"), "{os}");
    let status = inside(&root, &["dpkg-query", "-W", "-f", "${Status} ${Version}", "guest-installer"]).stdout;
    assert_eq!(status, format!("install ok installed {}", b.version));
    // Its timer is enabled as on bookworm.
    // (The link is absolute: read, not followed, from outside.)
    let link = fs::read_link(root.join("etc/systemd/system/timers.target.wants/guest-installer-settle.timer")).unwrap();
    assert!(link.ends_with("systemd/system/guest-installer-settle.timer"), "{}", link.display());
    assert!(root.join(link.strip_prefix("/").unwrap()).is_file(), "{}", link.display());

    // The installed program, on trixie's libraries.
    let help = inside(&root, &["guest-installer", "help"]).stdout;
    assert!(help.contains("template build"), "{help}");
    let iso = installer_iso(false);
    fs::copy(&iso, root.join("root/fixture.iso")).unwrap();
    let sum = format!("sha256={}", sha256(&iso));
    inside(&root, &["guest-installer", "image", "import", "fixture", "/root/fixture.iso", &sum]);
    let images = inside(&root, &["guest-installer", "images", "--json"]).json();
    assert_eq!(images["images"][0]["name"], "fixture", "{images}");

    // Booted (systemd as PID 1 in the container): the timer is active and
    // its service runs to success. A unit of the test's looks and powers off.
    script(
        &root,
        "/usr/local/sbin/gi-check",
        "#!/bin/sh\n{\n  systemctl is-active guest-installer-settle.timer\n  systemctl start guest-installer-settle.service\n  \
         echo \"start: $?\"\n  systemctl show -p Result guest-installer-settle.service\n} >/root/gi-check.out 2>&1\nsystemctl poweroff\n",
    );
    fs::write(
        root.join("etc/systemd/system/gi-check.service"),
        "[Unit]\nAfter=timers.target\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/gi-check\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    std::os::unix::fs::symlink("/etc/systemd/system/gi-check.service", root.join("etc/systemd/system/multi-user.target.wants/gi-check.service")).unwrap();
    let t = Instant::now();
    must(nspawn(&root, &["-b", "--private-network"]), Duration::from_secs(300));
    let check = fs::read_to_string(root.join("root/gi-check.out")).unwrap();
    assert_eq!(check, "active\nstart: 0\nResult=success\n", "the booted trixie system");
    eprintln!("BENCH boot trixie, timer active, settle run, power off: {:.1} s", t.elapsed().as_secs_f64());

    // The main job on the trixie host, with trixie's tools: a Debian 13
    // template bootstrapped from the mirror (trixie's mmdebstrap and
    // mke2fs, whose defaults differ from bookworm's), a clone of it, booted
    // by trixie's qemu to its login prompt, then stopped.
    let config = root.join("etc/guest-installer/config.toml");
    let text = fs::read_to_string(&config).unwrap();
    let edited = text
        .replacen("driver = \"xl\"", "driver = \"qemu\"\nqemu_net = \"user\"", 1)
        .replacen("host = \"deb.debian.org\"", &format!("host = \"{host}\""), 1)
        .replacen("directory = \"/debian\"", &format!("directory = \"{dir}\""), 1);
    assert!(edited.contains("driver = \"qemu\"") && edited.contains(&format!("host = \"{host}\"")), "the shipped config changed shape:\n{text}");
    fs::write(&config, edited).unwrap();
    let t = Instant::now();
    let mut build = nspawn(&root, &["--pipe"]);
    build.args(["--", "guest-installer", "template", "build", "suite=trixie", "name=tx", "--json"]);
    let built_tpl = must(build, Duration::from_secs(900)).json();
    assert!(built_tpl["kernel_version"].as_str().unwrap_or("").starts_with("6.12."), "{built_tpl}");
    eprintln!("BENCH template build suite=trixie on the trixie host: {:.0} s", t.elapsed().as_secs_f64());
    fs::write(root.join("root/t1.img"), b"").unwrap();
    fs::File::options().write(true).open(root.join("root/t1.img")).unwrap().set_len(3 << 30).unwrap();
    script(
        &root,
        "/usr/local/sbin/gi-main-job",
        "#!/bin/sh\nset -e\n\
         guest-installer machine add t1 owner=bob@EXAMPLE.ORG ip=192.0.2.17 netmask=255.255.255.0 gateway=192.0.2.1 nameserver=192.0.2.53 mac=00:16:3e:00:00:07 disk=/root/t1.img\n\
         echo 'a root password' | guest-installer install t1 template=tx\n\
         i=0\nwhile [ $i -lt 600 ]; do\n  if grep -q 't1 login:' /var/lib/guest-installer/vms/t1/console.log; then guest-installer stop t1 --force; echo LOGIN; exit 0; fi\n  \
         sleep 1; i=$((i+1))\ndone\nguest-installer stop t1 --force\nexit 1\n",
    );
    let t = Instant::now();
    let mut main_job = nspawn(&root, &["--pipe", "--private-network"]);
    main_job.args(["--", "/usr/local/sbin/gi-main-job"]);
    let job = run_bounded(main_job, b"", Duration::from_secs(900));
    let console = fs::read(root.join("var/lib/guest-installer/vms/t1/console.log")).unwrap_or_default();
    assert!(job.code == 0 && job.stdout.ends_with("LOGIN\n"), "{job:?}\n{}", readable_tail(&String::from_utf8_lossy(&console), 40));
    assert!(String::from_utf8_lossy(&console).contains("Debian GNU/Linux 13 t1 ttyS0"), "{}", readable_tail(&String::from_utf8_lossy(&console), 40));
    eprintln!("BENCH clone on the trixie host: install -> login prompt under TCG, stopped: {:.0} s", t.elapsed().as_secs_f64());

    // trixie's lintian: clean but for the package's own, explained overrides.
    fs::copy(b.dir.join(b.ganeti_deb()), root.join("root").join(b.ganeti_deb())).unwrap();
    let ganeti_deb = format!("/root/{}", b.ganeti_deb());
    let lint = inside(&root, &["lintian", "--fail-on", "error,warning", &deb, &ganeti_deb]);
    eprintln!("trixie lintian: {}", if lint.stdout.trim().is_empty() { "clean" } else { lint.stdout.trim() });

    // The package builds there too, with trixie's own toolchain: its cargo
    // (1.85) is older than Cargo.toml's rust-version, cargo-web (1.96, in
    // trixie main) is not (debian/README.source). The crates come from
    // this run's cargo cache, offline; the unit tests ran in the shared
    // build (nocheck here).
    let t = Instant::now();
    let mut apt = nspawn(&root, &[]);
    apt.args(["--", "apt-get", "install", "-y", "-q", "--no-install-recommends", "cargo-web", "debhelper", "build-essential"]);
    must(apt, Duration::from_secs(900));
    let tree = root.join("build/guest-installer");
    fs::create_dir_all(tree.parent().unwrap()).unwrap();
    must(cmd("cp", &["-a", b.src().to_str().unwrap(), tree.to_str().unwrap()]), Duration::from_secs(60));
    let cargo_home = std::env::var_os("CARGO_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cargo"));
    let registry = format!("--bind-ro={}:/root/.cargo/registry", cargo_home.join("registry").display());
    let mut build = nspawn(
        &root,
        &["--pipe", "--private-network", &registry, "--chdir=/build/guest-installer", "--setenv=CARGO_NET_OFFLINE=true", "--setenv=DEB_BUILD_OPTIONS=nocheck parallel=2"],
    );
    build.args(["--", "dpkg-buildpackage", "-us", "-uc", "-b"]);
    must(build, Duration::from_secs(1800));
    eprintln!("BENCH the package built on trixie with cargo-web (apt install + dpkg-buildpackage): {:.0} s", t.elapsed().as_secs_f64());
    // The same package: the same files, and trixie's lintian passes it.
    let files = |deb: &Path| {
        let out = must(cmd("dpkg-deb", &["-c", deb.to_str().unwrap()]), Duration::from_secs(60)).stdout;
        out.lines().map(|l| l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>()
    };
    let on_trixie = root.join("build").join(b.deb());
    assert_eq!(files(&on_trixie), files(&b.dir.join(b.deb())), "the trixie build ships other files than the bookworm one");
    inside(&root, &["lintian", "--fail-on", "error,warning", &format!("/build/{}", b.deb())]);
}
