//! The image and the target: what they are ([`Image::open`], [`inspect_target`]) and whether the
//! target may be written ([`check`], pure: every refusal is decided from the facts gathered,
//! which tests build by hand or from a fake `/proc` + `/sys` tree through [`BlockInfo::describe`]).
//!
//! One file per concern: `image` (the image, and what file a path is), `describe` (the target
//! as found in `/proc` and `/sys`), `rules` (the safety rules of [`check`]).

mod describe;
mod image;
mod rules;
#[cfg(test)]
mod tests;

pub use describe::{BlockInfo, InUse, Target, TargetKind, inspect_target};
pub use image::{Identity, Image};
pub use rules::{Found, Refusal, check};
