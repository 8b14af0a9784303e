//! Keyboard-wedge input as pure code: key names, keyboard layouts, and the assembler that turns
//! key events into scanned codes (burst vs typing from event timestamps). The evdev shell feeds
//! it events; nothing here reads a device.

pub mod assembler;
pub mod keymap;
pub mod keynames;

use std::path::PathBuf;

/// Which input device to use. Every criterion given must match; at least one is required.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// `/dev/input/by-id/usb-...-event-kbd` (or any path to an event node).
    pub path: Option<PathBuf>,
    /// USB vendor and product id.
    pub vid_pid: Option<(u16, u16)>,
    /// A case-insensitive substring of the device name.
    pub name: Option<String>,
    /// A case-insensitive substring of the physical path (`usb-0000:00:14.0-2/input0`).
    pub phys: Option<String>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.path.is_none() && self.vid_pid.is_none() && self.name.is_none() && self.phys.is_none()
    }

    /// Whether a device with these identifiers matches (the path is checked by the caller).
    pub fn matches(&self, vid: u16, pid: u16, name: Option<&str>, phys: Option<&str>) -> bool {
        let contains = |hay: Option<&str>, needle: &Option<String>| match needle {
            None => true,
            Some(n) => hay
                .map(|h| h.to_lowercase().contains(&n.to_lowercase()))
                .unwrap_or(false),
        };
        self.vid_pid.is_none_or(|(v, p)| v == vid && p == pid)
            && contains(name, &self.name)
            && contains(phys, &self.phys)
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = &self.path {
            parts.push(p.display().to_string());
        }
        if let Some((v, p)) = self.vid_pid {
            parts.push(format!("{v:04x}:{p:04x}"));
        }
        if let Some(n) = &self.name {
            parts.push(format!("name~{n:?}"));
        }
        if let Some(p) = &self.phys {
            parts.push(format!("phys~{p:?}"));
        }
        write!(f, "{}", parts.join(" "))
    }
}
