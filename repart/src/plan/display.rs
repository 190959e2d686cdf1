//! The plan as the human table `atomix repart` prints.

use std::fmt;

use atomix_blockdev::size::{Style, human};

use super::{ActionKind, Plan};

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "disk: {} bytes ({}), {} sectors of {} bytes, GPT {}{}",
            self.disk_bytes,
            human(self.disk_bytes, Style::Plan),
            self.disk_bytes / self.sector_size,
            self.sector_size,
            self.disk_guid,
            if self.new_table {
                " (new table)"
            } else if self.set_disk_guid {
                " (set)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "usable LBAs: {}..={}",
            self.first_usable_lba, self.last_usable_lba
        )?;
        if let Some(m) = self.backup_move {
            writeln!(
                f,
                "backup GPT moves to the end of the disk: last usable LBA {} -> {}",
                m.last_usable_before, m.last_usable_after
            )?;
        }
        writeln!(
            f,
            "{:>3}  {:<7}  {:<14}  {:<14}  {:>10}  {:>10}  {:>10}  {:<36}  definition",
            "#", "action", "label", "type", "start LBA", "sectors", "size", "uuid"
        )?;
        for a in &self.actions {
            let mut size = human(a.sectors * self.sector_size, Style::Plan);
            if let (ActionKind::Grow, Some(old)) = (a.kind, a.old_sectors) {
                size = format!("{} -> {size}", human(old * self.sector_size, Style::Plan));
            }
            let mut notes = Vec::new();
            if a.set_label {
                notes.push("label set".to_owned());
            }
            if a.set_uuid {
                notes.push("uuid set".to_owned());
            }
            if a.kind == ActionKind::Create {
                if let Some(fmt) = a.format {
                    notes.push(fmt.to_string());
                }
                if !a.make_directories.is_empty() {
                    notes.push(format!("dirs {}", a.make_directories.join(" ")));
                }
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  [{}]", notes.join(", "))
            };
            writeln!(
                f,
                "{:>3}  {:<7}  {:<14}  {:<14}  {:>10}  {:>10}  {:>10}  {:<36}  {}{notes}",
                a.number,
                a.kind.to_string(),
                a.label,
                a.type_name
                    .clone()
                    .unwrap_or_else(|| a.type_guid.to_string()),
                a.start_lba,
                a.sectors,
                size,
                a.uuid.to_string(),
                a.definition.as_deref().unwrap_or("-"),
            )?;
        }
        for d in &self.dropped {
            writeln!(
                f,
                "dropped: {} (priority {}) does not fit",
                d.definition, d.priority
            )?;
        }
        if self.nothing_to_do {
            writeln!(f, "nothing to do")?;
        }
        Ok(())
    }
}
