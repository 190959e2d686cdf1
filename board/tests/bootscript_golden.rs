//! The rendered `boot.scr` text of each built-in board, byte for byte, against the golden files
//! in `tests/golden/` (build ID `b1d-42`, version `1.2.3`). A change to the script shows up here
//! as a diff to review; update the golden file with it.

#![allow(clippy::unwrap_used)]

use atomix_board::Board;
use atomix_board::bootscript::{BuildInfo, render};

fn check(board: &str, golden: &str) {
    let info = BuildInfo::new("b1d-42", "1.2.3").unwrap();
    let text = render(&Board::builtin(board).unwrap(), &info);
    if text != golden {
        let first = text
            .lines()
            .zip(golden.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| text.lines().count().min(golden.lines().count()));
        panic!(
            "boot.scr of {board} differs from tests/golden/boot-{board}.txt from line {}:\n{text}",
            first + 1
        );
    }
}

#[test]
fn rock64_script_is_the_golden_one() {
    check("rock64", include_str!("golden/boot-rock64.txt"));
}

#[test]
fn qemu_virt_script_is_the_golden_one() {
    check("qemu-virt", include_str!("golden/boot-qemu-virt.txt"));
}
