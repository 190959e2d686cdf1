//! T0: the semantics of `plan` (matching, growth, weights, padding, priorities, idempotence,
//! foreign partitions, refusals) on in-memory tables.

// Fixture helpers outside #[test] functions panic on purpose: a failed fixture step is a failed test.
#![allow(clippy::unwrap_used)]

use atomix_repart::definitions::{self, Arch, Definition, Format};
use atomix_repart::gpt::{self, Geometry, Guid, Partition, Table, types};
use atomix_repart::plan::{ATTR_GROWFS, ActionKind, PlanError, PlanOptions, derive_uuid, plan};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SEED: Guid = Guid::from_u128(0x11111111_2222_3333_4444_555555555555);

fn board(name: &str) -> Vec<Definition> {
    let board = atomix_board::Board::builtin(name).unwrap();
    board
        .repart
        .definitions
        .iter()
        .map(|(file, text)| definitions::parse_definition(file, text, Arch::Arm64).unwrap())
        .collect()
}

fn defs(files: &[(&str, &str)]) -> Vec<Definition> {
    files
        .iter()
        .map(|(name, body)| {
            definitions::parse_definition(name, &format!("[Partition]\n{body}"), Arch::Arm64)
                .unwrap()
        })
        .collect()
}

fn part(number: u32, ty: Guid, name: &str, start_mib: u64, size_mib: u64) -> Partition {
    Partition {
        number,
        type_guid: ty,
        uuid: Guid::from_seed(name.as_bytes()),
        first_lba: start_mib * MIB / 512,
        last_lba: (start_mib + size_mib) * MIB / 512 - 1,
        attributes: 0,
        name: name.into(),
    }
}

/// The flashed image: boot-a and rootfs-a, first usable LBA 32768, backup GPT right after a
/// 1169 MiB image.
fn flashed() -> Table {
    let image = Geometry::new(1169 * MIB, 512).unwrap();
    Table {
        disk_guid: Guid::from_seed(b"disk"),
        first_usable_lba: 32768,
        last_usable_lba: image.max_last_usable_lba(),
        partitions: vec![
            part(1, types::XBOOTLDR, "boot-a", 16, 128),
            part(2, types::ROOT_ARM64, "rootfs-a", 144, 1024),
        ],
    }
}

fn opts() -> PlanOptions {
    PlanOptions {
        first_usable_lba: 32768,
        ..PlanOptions::default()
    }
}

/// (number, label, start LBA, sectors) of every partition of the plan's table.
fn layout(t: &Table) -> Vec<(u32, String, u64, u64)> {
    t.partitions
        .iter()
        .map(|p| (p.number, p.name.clone(), p.first_lba, p.sectors()))
        .collect()
}

#[test]
fn rock64_16_gib_first_boot_is_design_section_3() {
    let disk = 16 * GIB;
    let p = plan(&board("rock64"), Some(&flashed()), disk, SEED, &opts()).unwrap();
    // End of data: the usable end (33554398 + 1 sectors) rounded down to 4096 bytes.
    let data_end = (33_554_399 * 512) / 4096 * 4096 / 512;
    assert_eq!(data_end, 33_554_392);
    assert_eq!(
        layout(&p.table_after),
        vec![
            (1, "boot-a".into(), 32768, 262_144),
            (2, "rootfs-a".into(), 294_912, 2_097_152),
            (3, "boot-b".into(), 1168 * 2048, 262_144),
            (4, "rootfs-b".into(), 1296 * 2048, 2_097_152),
            (5, "data".into(), 2320 * 2048, data_end - 2320 * 2048),
        ]
    );
    assert_eq!(2320 * 2048, 4_751_360);
    let kinds: Vec<_> = p.actions.iter().map(|a| a.kind).collect();
    use ActionKind::*;
    assert_eq!(kinds, [Keep, Keep, Create, Create, Create]);
    assert!(!p.nothing_to_do);
    assert!(!p.new_table);
    let m = p
        .backup_move
        .expect("the short image's backup GPT must move");
    assert_eq!(m.last_usable_after, 33_554_398);
    assert_eq!(p.table_after.last_usable_lba, 33_554_398);
    assert_eq!(p.table_after.first_usable_lba, 32768);
    assert_eq!(p.disk_guid, Guid::from_seed(b"disk"));
    // types, formats, directories, attributes
    let t = &p.table_after.partitions;
    assert_eq!(t[2].type_guid, types::XBOOTLDR);
    assert_eq!(t[3].type_guid, types::ROOT_ARM64);
    assert_eq!(t[4].type_guid, types::LINUX_GENERIC);
    assert_eq!(
        (t[2].attributes, t[3].attributes, t[4].attributes),
        (ATTR_GROWFS, ATTR_GROWFS, 0)
    );
    assert_eq!(p.actions[2].format, Some(Format::Vfat));
    assert_eq!(p.actions[3].format, None);
    assert_eq!(p.actions[4].format, Some(Format::F2fs));
    assert_eq!(
        p.actions[4].make_directories,
        [
            "/config",
            "/config/quadlet",
            "/config/ssh-authorized-keys",
            "/containers",
            "/logs"
        ]
    );
    // UUIDs as systemd-repart v252 derives them for --seed=11111111-2222-3333-4444-555555555555
    // (measured on this machine with the same definitions and image).
    let uuids: Vec<String> = t[2..].iter().map(|p| p.uuid.to_string()).collect();
    assert_eq!(
        uuids,
        [
            "DEC90ADF-FAC9-42C5-BCB0-8789510207B7",
            "7B4AD5C2-0248-4173-9376-09ADE41EB153",
            "FFD18FC1-69FC-4EB3-A625-E7053D1A0C3F"
        ]
    );
    // existing partitions are untouched
    assert_eq!(t[..2], flashed().partitions[..]);
}

#[test]
fn a_second_plan_of_the_result_has_nothing_to_do() {
    for disk in [4 * GIB, 16 * GIB, 32 * GIB + 4096 * 3] {
        let defs = board("rock64");
        let first = plan(&defs, Some(&flashed()), disk, SEED, &opts()).unwrap();
        let second = plan(&defs, Some(&first.table_after), disk, SEED, &opts()).unwrap();
        assert!(second.nothing_to_do, "{second}");
        assert_eq!(second.table_after, first.table_after);
        assert!(second.actions.iter().all(|a| a.kind == ActionKind::Keep));
        assert!(second.to_string().contains("nothing to do"));
        // another seed changes nothing either: existing UUIDs are kept
        let third = plan(
            &defs,
            Some(&first.table_after),
            disk,
            Guid::from_u128(7),
            &opts(),
        )
        .unwrap();
        assert!(third.nothing_to_do);
    }
}

#[test]
fn plans_are_deterministic_and_seeded() {
    let defs = board("rock64");
    let a = plan(&defs, Some(&flashed()), 8 * GIB, SEED, &opts()).unwrap();
    let b = plan(&defs, Some(&flashed()), 8 * GIB, SEED, &opts()).unwrap();
    assert_eq!(a, b);
    let c = plan(
        &defs,
        Some(&flashed()),
        8 * GIB,
        Guid::from_u128(42),
        &opts(),
    )
    .unwrap();
    assert_eq!(layout(&a.table_after), layout(&c.table_after));
    assert_ne!(
        a.table_after.partitions[2].uuid,
        c.table_after.partitions[2].uuid
    );
}

#[test]
fn qemu_virt_has_the_rock64_layout() {
    assert_eq!(board("qemu-virt"), board("rock64"));
}

#[test]
fn matching_is_by_type_in_file_order_not_by_label() {
    // Without the A definitions the first xbootldr/root definitions claim the A partitions.
    let defs = board("rock64");
    let b_only: Vec<_> = defs[2..].to_vec();
    let p = plan(&b_only, Some(&flashed()), 16 * GIB, SEED, &opts()).unwrap();
    assert_eq!(p.actions.len(), 3);
    assert_eq!(p.actions[0].definition.as_deref(), Some("30-boot-b.conf"));
    assert_eq!(
        p.actions[0].label, "boot-a",
        "labels are never changed once set"
    );
    assert_eq!(p.actions[0].kind, ActionKind::Keep);
    assert_eq!(p.actions[1].definition.as_deref(), Some("40-rootfs-b.conf"));
    assert_eq!(
        (p.actions[2].number, p.actions[2].label.as_str()),
        (3, "data")
    );
    assert_eq!(p.actions[2].start_lba, 1168 * 2048);
}

#[test]
fn an_existing_partition_with_an_empty_label_gets_label() {
    let mut t = flashed();
    t.partitions[1].name.clear();
    let p = plan(&board("rock64"), Some(&t), 16 * GIB, SEED, &opts()).unwrap();
    assert_eq!(p.actions[1].label, "rootfs-a");
    assert!(p.actions[1].set_label);
    assert_eq!(p.actions[1].kind, ActionKind::Keep);
    assert!(p.actions[1].changes_table());
    assert_eq!(p.table_after.partitions[1].name, "rootfs-a");
}

#[test]
fn derived_labels_are_type_names_made_unique() {
    let d = defs(&[
        ("a.conf", "Type=linux-generic\nSizeMaxBytes=20M"),
        ("b.conf", "Type=linux-generic\nSizeMaxBytes=20M"),
        ("c.conf", "Type=root\nLabel=\nSizeMaxBytes=20M"),
    ]);
    let p = plan(&d, None, GIB, SEED, &PlanOptions::default()).unwrap();
    let labels: Vec<_> = p.actions.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["linux-generic", "linux-generic-2", ""]);
    assert_eq!(p.actions[2].type_guid, types::ROOT_ARM64);
}

#[test]
fn blank_disk_gets_a_new_table_from_first_usable() {
    let p = plan(&board("rock64"), None, 16 * GIB, SEED, &opts()).unwrap();
    assert!(p.new_table && p.set_disk_guid);
    assert_eq!(p.disk_guid, derive_uuid(SEED, "disk-uuid"));
    assert_eq!(p.table_after.first_usable_lba, 32768);
    let starts: Vec<_> = p.actions.iter().map(|a| a.start_lba / 2048).collect();
    assert_eq!(starts, [16, 144, 1168, 1296, 2320]);
    assert!(p.actions.iter().all(|a| a.kind == ActionKind::Create));
    // the systemd default starts at 1 MiB
    let p = plan(
        &board("rock64"),
        None,
        16 * GIB,
        SEED,
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(p.actions[0].start_lba, 2048);
    // a first usable LBA inside the GPT is refused
    let bad = PlanOptions {
        first_usable_lba: 33,
        ..PlanOptions::default()
    };
    assert!(matches!(
        plan(&board("rock64"), None, 16 * GIB, SEED, &bad),
        Err(PlanError::FirstUsable { min: 34, .. })
    ));
}

#[test]
fn nothing_below_the_first_partition_is_used() {
    // A flashed table that declares first usable LBA 2048 (sfdisk's default) still gets nothing
    // in the 1..16 MiB gap, even for a definition that would fit there.
    let mut t = flashed();
    t.first_usable_lba = 2048;
    let mut d = board("rock64");
    d.insert(
        2,
        definitions::parse_definition(
            "25-small.conf",
            "[Partition]\nType=swap\nSizeMinBytes=4M\nSizeMaxBytes=4M",
            Arch::Arm64,
        )
        .unwrap(),
    );
    let p = plan(&d, Some(&t), 16 * GIB, SEED, &opts()).unwrap();
    assert!(
        p.table_after
            .partitions
            .iter()
            .all(|q| q.first_lba >= 32768),
        "{p}"
    );
    assert_eq!(p.table_after.first_usable_lba, 2048, "never rewritten");
}

#[test]
fn weights_share_free_space() {
    let d = defs(&[
        ("a.conf", "Type=home\nWeight=1000"),
        ("b.conf", "Type=srv\nWeight=3000"),
    ]);
    let disk = 4 * GIB;
    let p = plan(&d, None, disk, SEED, &PlanOptions::default()).unwrap();
    let (a, b) = (p.actions[0].sectors * 512, p.actions[1].sectors * 512);
    let area = (disk - 33 * 512) / 4096 * 4096 - MIB;
    assert_eq!(a + b, area, "everything is used");
    assert_eq!(a, area / 4 / 4096 * 4096);
    assert_eq!(p.actions[1].start_lba * 512, MIB + a);

    // a maximum caps a share, the rest goes to the others
    let d = defs(&[
        ("a.conf", "Type=home\nSizeMaxBytes=100M"),
        ("b.conf", "Type=srv\nWeight=0"),
        ("c.conf", "Type=var"),
    ]);
    let p = plan(&d, None, disk, SEED, &PlanOptions::default()).unwrap();
    let sizes: Vec<_> = p.actions.iter().map(|a| a.sectors * 512).collect();
    assert_eq!(sizes[0], 100 * MIB);
    assert_eq!(sizes[1], 10 * MIB, "weight 0 gets the default minimum");
    assert_eq!(sizes[2], area - 110 * MIB);

    // a minimum above the weighted share wins over the weight
    let d = defs(&[
        ("a.conf", "Type=home\nWeight=1\nSizeMinBytes=3G"),
        ("b.conf", "Type=srv\nWeight=1000000"),
    ]);
    let p = plan(&d, None, disk, SEED, &PlanOptions::default()).unwrap();
    assert_eq!(p.actions[0].sectors * 512, 3 * GIB);
}

#[test]
fn padding_follows_padding_weight_and_limits() {
    let d = defs(&[
        ("a.conf", "Type=home\nPaddingWeight=1000"),
        (
            "b.conf",
            "Type=srv\nSizeMinBytes=100M\nSizeMaxBytes=100M\nPaddingMinBytes=10M",
        ),
    ]);
    let disk = 2 * GIB;
    let p = plan(&d, None, disk, SEED, &PlanOptions::default()).unwrap();
    let a = &p.actions[0];
    let b = &p.actions[1];
    let a_bytes = a.sectors * 512;
    let gap = (b.start_lba - a.start_lba) * 512 - a_bytes;
    // a and its padding share equally what b (100M + 10M padding) leaves
    let area = (disk - 33 * 512) / 4096 * 4096 - MIB;
    let rest = area - 110 * MIB;
    assert_eq!(a_bytes, rest / 2 / 4096 * 4096);
    assert!(gap.abs_diff(a_bytes) <= 4096, "gap {gap} vs size {a_bytes}");
    let end_b = (b.start_lba + b.sectors) * 512;
    assert!(
        end_b + 10 * MIB <= (disk - 33 * 512),
        "b keeps its minimum padding"
    );

    let d = defs(&[(
        "a.conf",
        "Type=home\nSizeMaxBytes=1G\nPaddingWeight=1\nPaddingMaxBytes=16M",
    )]);
    let p = plan(&d, None, disk, SEED, &PlanOptions::default()).unwrap();
    assert_eq!(p.actions[0].sectors * 512, GIB);
}

#[test]
fn priorities_drop_the_highest_number_first() {
    let d = defs(&[
        ("a.conf", "Type=home\nSizeMinBytes=600M\nPriority=0"),
        ("b.conf", "Type=srv\nSizeMinBytes=600M\nPriority=5"),
        ("c.conf", "Type=var\nSizeMinBytes=300M\nPriority=10"),
        ("d.conf", "Type=tmp\nSizeMinBytes=100M\nPriority=-3"),
    ]);
    // 1 GiB fits a + d (700M) and then only c (300M) of the droppable ones, but c has the
    // highest number: c goes first, then b, leaving a and d.
    let p = plan(&d, None, GIB, SEED, &PlanOptions::default()).unwrap();
    let kept: Vec<_> = p
        .actions
        .iter()
        .map(|a| a.definition.clone().unwrap())
        .collect();
    assert_eq!(kept, ["a.conf", "d.conf"]);
    let dropped: Vec<_> = p
        .dropped
        .iter()
        .map(|d| (d.definition.as_str(), d.priority))
        .collect();
    assert_eq!(dropped, [("b.conf", 5), ("c.conf", 10)]);
    assert!(p.to_string().contains("dropped: c.conf (priority 10)"));
    assert_eq!(
        p.actions.iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2],
        "numbers stay dense"
    );

    // 2 GiB fits everything: nothing dropped
    let p = plan(&d, None, 2 * GIB, SEED, &PlanOptions::default()).unwrap();
    assert!(p.dropped.is_empty());

    // priority <= 0 is never dropped: 512 MiB cannot hold a, and the plan is refused
    let err = plan(&d, None, 512 * MIB, SEED, &PlanOptions::default()).unwrap_err();
    assert!(matches!(err, PlanError::DoesNotFit { .. }), "{err}");
}

#[test]
fn an_existing_partition_grows_into_the_space_after_it() {
    let defs16 = board("rock64");
    let first = plan(&defs16, Some(&flashed()), 8 * GIB, SEED, &opts()).unwrap();
    // the same disk, now 16 GiB (a bigger card): data grows, nothing moves
    let bigger = plan(&defs16, Some(&first.table_after), 16 * GIB, SEED, &opts()).unwrap();
    let data = &bigger.actions[4];
    assert_eq!(data.kind, ActionKind::Grow);
    assert_eq!(data.start_lba, 4_751_360);
    assert_eq!(data.start_lba + data.sectors, 33_554_392);
    assert_eq!(data.old_sectors, Some(first.actions[4].sectors));
    assert!(bigger.backup_move.is_some());
    assert_eq!(
        bigger.actions[..4],
        first.actions[..4]
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a.kind = ActionKind::Keep;
                a.old_sectors = Some(a.sectors);
                a
            })
            .collect::<Vec<_>>()[..]
    );
    assert!(bigger.to_string().contains(" -> "), "{bigger}");
}

#[test]
fn foreign_partitions_are_left_alone_and_numbered_around() {
    let mut t = flashed();
    t.last_usable_lba = Geometry::new(16 * GIB, 512).unwrap().max_last_usable_lba();
    // an ESP at 3 GiB that no definition describes
    t.partitions.push(part(7, types::ESP, "vendor", 3072, 512));
    let p = plan(&board("rock64"), Some(&t), 16 * GIB, SEED, &opts()).unwrap();
    let foreign: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Foreign)
        .collect();
    assert_eq!(foreign.len(), 1);
    assert_eq!(foreign[0].number, 7);
    assert_eq!(p.table_after.partition(7), t.partition(7), "untouched");
    // New partitions are numbered after the highest entry and go first-fit into the smallest
    // gap that holds them (systemd's rule): all three fit into the 1904 MiB gap before the
    // foreign partition, so data gets what is left of that gap, not the 12 GiB after it.
    let created: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Create)
        .map(|a| {
            (
                a.number,
                a.label.as_str(),
                a.start_lba / 2048,
                a.sectors / 2048,
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            (8, "boot-b", 1168, 128),
            (9, "rootfs-b", 1296, 1024),
            (10, "data", 2320, 752)
        ]
    );
}

#[test]
fn too_small_disk_is_refused_with_the_shortfall() {
    let defs = board("rock64");
    let disk = 2 * GIB;
    let err = plan(&defs, Some(&flashed()), disk, SEED, &opts()).unwrap_err();
    // boot-b + rootfs-b + data need 1168 + 128 + 1024 + 64 = 2384 MiB; the usable end of 2 GiB
    // is 2 GiB - 33 sectors, rounded down to 4096: 20 KiB short of 2 GiB.
    let expected = 336 * MIB + 20 * 1024;
    match &err {
        PlanError::DoesNotFit {
            shortfall_bytes,
            foreign,
            disk_bytes,
            ..
        } => {
            assert_eq!(*shortfall_bytes, Some(expected));
            assert!(foreign.is_empty());
            assert_eq!(*disk_bytes, disk);
        }
        other => panic!("expected DoesNotFit, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("the disk is {expected} bytes too small")),
        "{err}"
    );
    // the shortfall is exact: that much more fits, one grain less does not
    assert!(plan(&defs, Some(&flashed()), disk + expected, SEED, &opts()).is_ok());
    assert!(
        plan(
            &defs,
            Some(&flashed()),
            disk + expected - 4096,
            SEED,
            &opts()
        )
        .is_err()
    );
}

#[test]
fn a_foreign_partition_in_the_way_is_named() {
    let mut t = flashed();
    t.last_usable_lba = Geometry::new(8 * GIB, 512).unwrap().max_last_usable_lba();
    t.partitions
        .push(part(3, types::ESP, "vendor", 1168, 8 * 1024 - 1168 - 1));
    let err = plan(&board("rock64"), Some(&t), 8 * GIB, SEED, &opts()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PlanError::DoesNotFit { .. }), "{err:?}");
    assert!(
        msg.contains("30-boot-b.conf does not fit")
            && msg.contains("foreign partitions in the way: partition 3 (\"vendor\")"),
        "{msg}"
    );
}

#[test]
fn an_existing_partition_that_cannot_reach_its_minimum_is_named() {
    let mut t = flashed();
    t.partitions[0].last_lba = 32768 + 64 * 2048 - 1; // boot-a is only 64 MiB
    t.partitions
        .push(part(3, types::ESP, "blocker", 80 + 1, 16)); // right after it
    let err = plan(&board("rock64"), Some(&t), 8 * GIB, SEED, &opts()).unwrap_err();
    match &err {
        PlanError::ExistingCannotGrow {
            partition,
            next,
            needed_bytes,
            ..
        } => {
            assert_eq!(partition.number, 1);
            assert_eq!(next.as_ref().map(|n| n.number), Some(3));
            assert_eq!(*needed_bytes, 128 * MIB);
        }
        other => panic!("expected ExistingCannotGrow, got {other:?}"),
    }
    assert!(
        err.to_string().contains("a larger disk would not help"),
        "{err}"
    );
}

#[test]
fn a_table_larger_than_the_disk_is_refused() {
    let t = flashed();
    let err = plan(&board("rock64"), Some(&t), 1024 * MIB, SEED, &opts()).unwrap_err();
    assert!(matches!(err, PlanError::TableExceedsDisk { .. }), "{err:?}");
}

#[test]
fn an_explicit_uuid_that_is_taken_is_refused() {
    let t = flashed();
    let taken = t.partitions[0].uuid;
    let mut d = board("rock64");
    d[2] = definitions::parse_definition(
        "30-boot-b.conf",
        &format!("[Partition]\nType=xbootldr\nSizeMinBytes=128M\nUUID={taken}"),
        Arch::Arm64,
    )
    .unwrap();
    let err = plan(&d, Some(&t), 16 * GIB, SEED, &opts()).unwrap_err();
    assert!(matches!(err, PlanError::UuidInUse { .. }), "{err:?}");
}

#[test]
fn the_plan_prints_and_serialises() {
    let p = plan(&board("rock64"), Some(&flashed()), 16 * GIB, SEED, &opts()).unwrap();
    let text = p.to_string();
    for needle in [
        "backup GPT moves to the end of the disk: last usable LBA 2394078 -> 33554398",
        "create   boot-b",
        "keep     rootfs-a",
        "[f2fs, dirs /config /config/quadlet",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let json: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(json["actions"][4]["kind"], "create");
    assert_eq!(json["actions"][4]["label"], "data");
    assert_eq!(
        json["actions"][4]["type"],
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    );
    assert_eq!(json["actions"][4]["type_name"], "linux-generic");
    assert_eq!(json["actions"][4]["format"], "f2fs");
    assert_eq!(json["actions"][4]["start_lba"], 4_751_360);
    assert_eq!(json["backup_move"]["last_usable_after"], 33_554_398);
    assert_eq!(json["nothing_to_do"], false);
    assert!(json.get("table_after").is_none());
}

#[test]
fn the_planned_table_round_trips_through_the_codec() {
    let disk = 4 * GIB;
    let p = plan(&board("rock64"), Some(&flashed()), disk, SEED, &opts()).unwrap();
    let geometry = p.geometry().unwrap();
    let pieces = gpt::encode(&geometry, &p.table_after).unwrap();
    assert_eq!(pieces.len(), 5);
}
