//! `posctl devices`: what is plugged into the box (input devices, serial ports, cameras, USB
//! printers) with VID:PID and the stable by-id path to put in posd.toml, and — when posd answers
//! — which role posd gave each one and its state. Read from /dev and sysfs; nothing is opened.

use crate::out::{table, Align};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One device found on the box, or one posd knows of.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    /// `input`, `serial`, `camera`, `printer`, or `-` for a role posd has with nothing found.
    pub kind: String,
    /// `vvvv:pppp` from USB, when it is a USB device.
    pub vid_pid: Option<String>,
    /// The stable path (`/dev/input/by-id/...`): what posd.toml should name.
    pub by_id: Option<String>,
    /// The kernel node (`/dev/input/event3`).
    pub node: Option<String>,
    /// The device's name (input devices).
    pub name: Option<String>,
    /// The role posd gave it (`hid_scanner`, `keypad`, `printer`, ...), when posd says.
    pub role: Option<String>,
    /// posd's state for that role (`ok: ...`, `absent: ...`).
    pub state: Option<String>,
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// VID:PID of the USB device above a sysfs device directory.
fn usb_ids(sys_device: &Path) -> Option<String> {
    let mut dir = std::fs::canonicalize(sys_device).ok()?;
    for _ in 0..8 {
        if let (Some(v), Some(p)) = (
            read_trim(&dir.join("idVendor")),
            read_trim(&dir.join("idProduct")),
        ) {
            return Some(format!("{v}:{p}"));
        }
        if !dir.pop() {
            break;
        }
    }
    None
}

/// (by-id link, node) for every link in `dir`.
fn by_id(dir: &str) -> Vec<(PathBuf, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(PathBuf, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let link = e.path();
            let node = std::fs::canonicalize(&link).ok()?;
            Some((link, node))
        })
        .collect();
    v.sort();
    v
}

/// Everything found under /dev, with sysfs details.
pub fn scan() -> Vec<Found> {
    let mut out = Vec::new();
    let base = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    for (link, node) in by_id("/dev/input/by-id") {
        let Some(ev) = base(&node).filter(|n| n.starts_with("event")) else {
            continue;
        };
        let sys = PathBuf::from("/sys/class/input").join(&ev).join("device");
        let vid_pid = match (
            read_trim(&sys.join("id/vendor")),
            read_trim(&sys.join("id/product")),
        ) {
            (Some(v), Some(p)) => Some(format!("{v}:{p}")),
            _ => usb_ids(&sys),
        };
        out.push(Found {
            kind: "input".into(),
            vid_pid,
            by_id: Some(link.display().to_string()),
            node: Some(node.display().to_string()),
            name: read_trim(&sys.join("name")),
            ..Found::default()
        });
    }
    for (dir, kind, class) in [
        ("/dev/serial/by-id", "serial", "tty"),
        ("/dev/v4l/by-id", "camera", "video4linux"),
    ] {
        for (link, node) in by_id(dir) {
            let Some(n) = base(&node) else { continue };
            let sys = PathBuf::from("/sys/class")
                .join(class)
                .join(&n)
                .join("device");
            out.push(Found {
                kind: kind.into(),
                vid_pid: usb_ids(&sys),
                by_id: Some(link.display().to_string()),
                node: Some(node.display().to_string()),
                name: read_trim(&sys.join("name")).or_else(|| read_trim(&sys.join("../product"))),
                ..Found::default()
            });
        }
    }
    if let Ok(rd) = std::fs::read_dir("/dev/usb") {
        let mut lps: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| base(p).is_some_and(|n| n.starts_with("lp")))
            .collect();
        lps.sort();
        for node in lps {
            let Some(n) = base(&node) else { continue };
            let sys = PathBuf::from("/sys/class/usbmisc").join(&n).join("device");
            out.push(Found {
                kind: "printer".into(),
                vid_pid: usb_ids(&sys),
                node: Some(node.display().to_string()),
                ..Found::default()
            });
        }
    }
    out
}

/// Gives each found device the role posd's status names it under (its state mentions the
/// device's by-id path or node); roles with nothing found are added as their own rows.
pub fn with_roles(
    mut found: Vec<Found>,
    devices: &std::collections::BTreeMap<String, String>,
) -> Vec<Found> {
    for (role, state) in devices {
        let hit = found.iter_mut().find(|f| {
            f.role.is_none()
                && [&f.by_id, &f.node]
                    .into_iter()
                    .flatten()
                    .any(|p| state.contains(p.as_str()))
        });
        match hit {
            Some(f) => {
                f.role = Some(role.clone());
                f.state = Some(state.clone());
            }
            None => found.push(Found {
                kind: "-".into(),
                role: Some(role.clone()),
                state: Some(state.clone()),
                ..Found::default()
            }),
        }
    }
    found
}

pub fn print(rows: &[Found], daemon_note: Option<&str>) {
    let d = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|f| {
            vec![
                f.kind.clone(),
                d(&f.vid_pid),
                d(&f.role),
                d(&f.state),
                f.by_id
                    .clone()
                    .or_else(|| f.node.clone())
                    .unwrap_or_else(|| "-".into()),
                d(&f.name),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                ("KIND", Align::Left),
                ("VID:PID", Align::Left),
                ("ROLE", Align::Left),
                ("STATE", Align::Left),
                ("PATH", Align::Left),
                ("NAME", Align::Left),
            ],
            &cells
        )
    );
    if let Some(n) = daemon_note {
        eprintln!("posctl: roles and states not shown: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_paths_posd_names() {
        let found = vec![Found {
            kind: "input".into(),
            vid_pid: Some("05e0:1200".into()),
            by_id: Some("/dev/input/by-id/usb-Symbol-event-kbd".into()),
            node: Some("/dev/input/event3".into()),
            ..Found::default()
        }];
        let devices = [
            (
                "hid_scanner".to_string(),
                "ok: /dev/input/by-id/usb-Symbol-event-kbd".to_string(),
            ),
            ("keypad".to_string(), "absent: keypad not found".to_string()),
        ]
        .into_iter()
        .collect();
        let rows = with_roles(found, &devices);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].role.as_deref(), Some("hid_scanner"));
        assert_eq!(rows[1].kind, "-");
        assert_eq!(rows[1].role.as_deref(), Some("keypad"));
    }
}
