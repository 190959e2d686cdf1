//! Validation of a config as an import does it (parse, then render the whole config root, every
//! error located): `atomix-config`'s, which the operator's client uses too.

pub use atomix_config::validate::{Valid, refusal_text, unreadable_json, validate};
