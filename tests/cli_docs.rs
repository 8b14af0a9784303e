//! The man pages and shell completions the package ships are generated from the command lines
//! (`posd::cli`, the `Command`s the binaries parse with): this test generates them again and
//! fails when the committed files in packaging/ differ, so they cannot go stale; it also checks
//! that the .deb's assets put them where man, bash, zsh and fish look, and that man reads every
//! page without a warning (lintian's groff check).
//!
//! Refresh the committed files after changing a command, its help or packaging/man/sections/:
//!     POSD_UPDATE_CLI_DOCS=1 cargo test -p posd --test cli_docs

use clap::CommandFactory;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const REFRESH: &str = "POSD_UPDATE_CLI_DOCS=1 cargo test -p posd --test cli_docs";
const MAN_DIR: &str = "packaging/man";
const COMPLETIONS_DIR: &str = "packaging/completions";

/// Where each shell looks for the completion script of a command shipped by a package.
const COMPLETIONS: [(&str, &str, &str); 3] = [
    (
        "bash",
        "posctl.bash",
        "usr/share/bash-completion/completions/posctl",
    ),
    ("zsh", "_posctl", "usr/share/zsh/vendor-completions/_posctl"),
    (
        "fish",
        "posctl.fish",
        "usr/share/fish/vendor_completions.d/posctl.fish",
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Text as roff: backslashes and hyphens escaped, no line taken for a request.
fn roff_text(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// posctl(1)'s EXIT STATUS, from the table `posctl --help` prints too.
fn posctl_exit_status() -> String {
    let mut s = String::from(".SH \"EXIT STATUS\"\n");
    for (code, text) in posd::cli::posctl::EXIT_STATUS {
        let text = text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        s.push_str(&format!(".TP\n.B {code}\n{}.\n", roff_text(&text)));
    }
    s
}

fn hand_written(name: &str) -> String {
    let path = root().join(MAN_DIR).join("sections").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The date of the package's newest changelog entry (YYYY-MM-DD): the pages change with a
/// release, not with the day they were generated.
fn release_date() -> String {
    let log = std::fs::read_to_string(root().join("packaging/changelog")).unwrap();
    let line = log
        .lines()
        .find(|l| l.starts_with(" -- "))
        .expect("packaging/changelog: no ' -- ' line");
    // " -- name <mail>  Sun, 22 Nov 2026 00:00:00 +0000"
    let date = line.rsplit(">  ").next().unwrap();
    let parts: Vec<&str> = date.split_whitespace().collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
    format!("{}-{month:02}-{:0>2}", parts[3], parts[1])
}

/// One page: clap_mangen's sections for `cmd`, then `tail` (hand-written roff).
fn render(cmd: &clap::Command, section: &str, manual: &str, tail: &str) -> Vec<u8> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section(section)
        .manual(manual)
        .date(release_date())
        .source(format!("posd {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).unwrap();
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out).unwrap();
    }
    out.extend_from_slice(tail.as_bytes());
    out
}

/// A page per command, git's way: `top.N` with the hand-written `top_tail`, and
/// `top-sub[-subsub].N` for each subcommand, pointing back to the top page.
fn pages(
    cmd: clap::Command,
    section: &str,
    manual: &str,
    top_tail: &str,
    into: &mut BTreeMap<PathBuf, Vec<u8>>,
) {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let top = cmd.get_name().to_string();
    fn walk(
        cmd: &clap::Command,
        section: &str,
        manual: &str,
        see_also: &str,
        into: &mut BTreeMap<PathBuf, Vec<u8>>,
    ) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_display_name().unwrap_or(sub.get_name());
            into.insert(
                Path::new(MAN_DIR).join(format!("{name}.{section}")),
                render(sub, section, manual, see_also),
            );
            walk(sub, section, manual, see_also, into);
        }
    }
    let see_also = format!(".SH \"SEE ALSO\"\n.BR {top} ({section})\n");
    walk(&cmd, section, manual, &see_also, into);
    into.insert(
        Path::new(MAN_DIR).join(format!("{top}.{section}")),
        render(&cmd, section, manual, top_tail),
    );
}

/// Every generated file, by its path under the repository.
fn generated() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    pages(
        posd::cli::posctl::Cli::command(),
        "1",
        "User Commands",
        &(posctl_exit_status() + &hand_written("posctl.roff")),
        &mut files,
    );
    pages(
        posd::cli::posd::Cli::command(),
        "8",
        "System Administration",
        &hand_written("posd.roff"),
        &mut files,
    );
    // The scripts as users get them: `posctl completions SHELL`.
    for (shell, file, _) in COMPLETIONS {
        let out = Command::new(env!("CARGO_BIN_EXE_posctl"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "posctl completions {shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        files.insert(Path::new(COMPLETIONS_DIR).join(file), out.stdout);
    }
    files
}

/// The generated files now in the repository (pages and scripts, not the hand-written sections).
fn committed() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in [MAN_DIR, COMPLETIONS_DIR] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                found.push(Path::new(dir).join(e.file_name()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn committed_man_pages_and_completions_are_the_clis() {
    let want = generated();
    // Every command has its page; the two binaries' top pages and a nested one are there.
    for p in ["posctl.1", "posctl-sale.1", "posctl-fleet-push.1", "posd.8"] {
        assert!(want.contains_key(&Path::new(MAN_DIR).join(p)), "no {p}");
    }
    let update = std::env::var_os("POSD_UPDATE_CLI_DOCS").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for (path, bytes) in &want {
        let full = root().join(path);
        match std::fs::read(&full) {
            Ok(have) if have == *bytes => {}
            Ok(_) if update => std::fs::write(&full, bytes).unwrap(),
            Ok(_) => problems.push(format!("{}: differs from the CLI", path.display())),
            Err(_) if update => {
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, bytes).unwrap();
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    for path in committed() {
        if !want.contains_key(&path) {
            if update {
                std::fs::remove_file(root().join(&path)).unwrap();
            } else {
                problems.push(format!("{}: no such command any more", path.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the committed man pages and completions are not what the command lines make:\n  {}\n\
         refresh them with `{REFRESH}` and commit the result",
        problems.join("\n  ")
    );
}

/// man reads every page without a warning: lintian's check (tag groff-message), same command.
#[test]
fn man_reads_every_page_without_a_warning() {
    let pages: Vec<(PathBuf, Vec<u8>)> = generated()
        .into_iter()
        .filter(|(p, _)| p.starts_with(MAN_DIR))
        .collect();
    assert!(pages.len() > 10, "{} pages", pages.len());
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in pages {
        let file = dir.path().join(path.file_name().unwrap());
        std::fs::write(&file, bytes).unwrap();
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
            .arg(&file)
            .env("LC_ALL", "C.UTF-8")
            .env("MANROFFSEQ", "")
            .env("MANWIDTH", "80")
            .output()
            .unwrap_or_else(|e| panic!("man (install man-db and groff): {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "man warns about {}:\n{stderr}",
            path.display()
        );
        // The NAME line mandb indexes (lintian: manpage-has-bad-whatis-entry).
        let out = Command::new("lexgrog").arg(&file).output().unwrap();
        let whatis = String::from_utf8_lossy(&out.stdout);
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        assert!(
            out.status.success() && whatis.contains(&format!("\"{name} - ")),
            "lexgrog {}: {whatis}",
            path.display()
        );
    }
}

/// The installed path of every file the assets of `[package.metadata.deb]` name, the way
/// cargo-deb resolves them (a glob in the last component; a target ending in `/` is a
/// directory). Files built at package time (target/) are left out.
fn deb_assets() -> BTreeMap<PathBuf, Vec<String>> {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets");
    let mut installed: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for a in assets {
        let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
        if src.starts_with("target/") {
            continue;
        }
        let src = Path::new(src);
        let pattern = src.file_name().unwrap().to_string_lossy().to_string();
        let files: Vec<PathBuf> = match pattern.split_once('*') {
            None => vec![src.to_path_buf()],
            Some((prefix, suffix)) => {
                let dir = src.parent().unwrap();
                let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
                    .unwrap()
                    .map(|e| e.unwrap())
                    .filter(|e| e.file_type().unwrap().is_file())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| {
                        n.len() >= prefix.len() + suffix.len()
                            && n.starts_with(prefix)
                            && n.ends_with(suffix)
                    })
                    .map(|n| dir.join(n))
                    .collect();
                v.sort();
                v
            }
        };
        assert!(
            !files.is_empty() && files.iter().all(|f| root().join(f).is_file()),
            "the .deb asset {} names no file",
            src.display()
        );
        for f in files {
            let to = if dest.ends_with('/') {
                format!("{dest}{}", f.file_name().unwrap().to_string_lossy())
            } else {
                dest.to_string()
            };
            installed.entry(f).or_default().push(to);
        }
    }
    installed
}

#[test]
fn the_package_ships_every_page_and_completion_script() {
    let installed = deb_assets();
    for path in generated().into_keys() {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let want = if path.starts_with(MAN_DIR) {
            // cargo-deb gzips what it installs under usr/share/man (lintian wants them gzipped).
            let section = file.rsplit('.').next().unwrap();
            format!("usr/share/man/man{section}/{file}")
        } else {
            COMPLETIONS
                .iter()
                .find(|c| c.1 == file)
                .map(|c| c.2.to_string())
                .unwrap()
        };
        let got = installed.get(&path).cloned().unwrap_or_default();
        assert_eq!(
            got,
            vec![want.clone()],
            "{} must be installed once, at {want} (Cargo.toml [package.metadata.deb] assets)",
            path.display()
        );
    }
    // The hand-written sections are sources, not pages.
    assert!(
        !installed
            .keys()
            .any(|p| p.starts_with("packaging/man/sections")),
        "packaging/man/sections/ is not shipped"
    );
}

/// The bash script completes as a user would see it: a subcommand from its first letters, and a
/// nested subcommand's options.
#[test]
fn bash_completes_subcommands_and_their_options() {
    let script = root().join(COMPLETIONS_DIR).join("posctl.bash");
    let complete = |words: &str| -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); \
                 _posctl posctl \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
                 echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap_or_else(|e| panic!("bash: {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(complete("posctl fl"), "fleet");
    assert_eq!(complete("posctl batch"), "batch-close batches");
    assert_eq!(complete("posctl fleet push --wa"), "--wait --wait-s");
    assert_eq!(complete("posctl completions f"), "fish");
}
