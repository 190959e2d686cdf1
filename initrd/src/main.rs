//! `/init` of the AtomixOS initramfs; the logic is in the `atomix_initrd` library.

#![forbid(unsafe_code)]

fn main() {
    atomix_initrd::host::main()
}
