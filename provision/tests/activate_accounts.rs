//! T0 tests of the user apply plan (spec 5.1) and the command lines of its executor.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use atomix_provision::activate::accounts::{
    AccountOp, AccountsError, Existing, Shells, Users, command_of, parse_existing, plan, valid_name,
};

fn users(json: &str) -> Users {
    serde_json::from_str(json).unwrap()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn existing(users: &[&str], groups: &[(&str, &[&str])]) -> Existing {
    Existing {
        users: set(users),
        groups: groups
            .iter()
            .map(|(g, m)| ((*g).to_owned(), set(m)))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn shells() -> Shells {
    Shells::detect(|p| p == Path::new("/usr/bin/zsh"))
}

const KEYS: &str = "/data/config/ssh-authorized-keys";

#[test]
fn new_users_are_created_by_kind_with_shells_and_locked() {
    let u = users(
        r#"{"ann": {"isAdmin": true, "ssh_key": "ssh-ed25519 AAAA"},
            "svc": {"isAdmin": false},
            "bea": {"isAdmin": true, "shell": "bash"}}"#,
    );
    // Debian has groups named like some users (`operator`): such a user joins the default group.
    let p = plan(
        &u,
        &set(&[]),
        &existing(&[], &[("svc", &[])]),
        &shells(),
        Path::new(KEYS),
    )
    .unwrap();
    assert_eq!(
        p.ops,
        [
            AccountOp::CreateAdmin {
                name: "ann".into(),
                shell: "/usr/bin/zsh".into(),
                no_user_group: false,
            },
            AccountOp::Lock("ann".into()),
            AccountOp::ChownKey {
                name: "ann".into(),
                path: PathBuf::from(KEYS).join("ann")
            },
            AccountOp::CreateAdmin {
                name: "bea".into(),
                shell: "/usr/bin/bash".into(),
                no_user_group: false,
            },
            AccountOp::Lock("bea".into()),
            AccountOp::CreateSystem {
                name: "svc".into(),
                shell: "/usr/bin/bash".into(),
                no_user_group: true,
            },
            AccountOp::Lock("svc".into()),
        ]
    );
    assert_eq!(p.managed, set(&["ann", "bea", "svc"]));
}

#[test]
fn without_zsh_admins_get_bash() {
    let s = Shells::detect(|_| false);
    assert_eq!(s.admin, Path::new("/usr/bin/bash"));
    assert_eq!(s.system, Path::new("/usr/bin/bash"));
}

#[test]
fn a_managed_existing_user_is_unexpired_and_locked_never_recreated() {
    let u = users(r#"{"ann": {"isAdmin": false}}"#);
    let p = plan(
        &u,
        &set(&["ann"]),
        &existing(&["ann"], &[]),
        &shells(),
        Path::new(KEYS),
    )
    .unwrap();
    assert_eq!(p.ops, [AccountOp::UnexpireLock("ann".into())]);
}

#[test]
fn an_unmanaged_existing_user_refuses_the_whole_plan() {
    let u = users(r#"{"aaa": {"isAdmin": true}, "bob": {}}"#);
    let err = plan(
        &u,
        &set(&[]),
        &existing(&["bob"], &[]),
        &shells(),
        Path::new(KEYS),
    );
    match err {
        Err(e @ AccountsError::Unmanaged(_)) => {
            assert_eq!(
                e.to_string(),
                "refusing to modify unmanaged existing user: bob"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn admins_join_the_existing_admin_groups_and_others_leave_them() {
    let u = users(r#"{"ann": {"isAdmin": true}, "svc": {}}"#);
    let ex = existing(
        &["ann", "svc"],
        &[("sudo", &["svc"]), ("podman", &["ann", "svc"])],
    );
    let p = plan(&u, &set(&["ann", "svc"]), &ex, &shells(), Path::new(KEYS)).unwrap();
    assert_eq!(
        p.ops,
        [
            AccountOp::UnexpireLock("ann".into()),
            AccountOp::AddToGroup {
                name: "ann".into(),
                group: "sudo".into()
            },
            AccountOp::UnexpireLock("svc".into()),
            AccountOp::RemoveFromGroup {
                name: "svc".into(),
                group: "sudo".into()
            },
            AccountOp::RemoveFromGroup {
                name: "svc".into(),
                group: "podman".into()
            },
        ]
    );
}

#[test]
fn protected_and_invalid_names_are_skipped() {
    let u = users(r#"{"root": {"isAdmin": true}, "appsvc": {}, "Bad": {}, "ok_1": {}}"#);
    let ex = existing(&["root", "appsvc"], &[]);
    let p = plan(&u, &set(&[]), &ex, &shells(), Path::new(KEYS)).unwrap();
    assert_eq!(p.skipped, ["Bad", "appsvc", "root"]);
    assert_eq!(p.managed, set(&["ok_1"]));
    assert!(valid_name("_a-b9") && !valid_name("9a") && !valid_name(&"a".repeat(33)));
}

#[test]
fn removed_users_are_locked_while_they_exist_and_then_forgotten() {
    let u = users(r#"{"ann": {"isAdmin": true}}"#);
    let before = set(&["ann", "old", "gone", "root"]);
    let ex = existing(&["ann", "old", "root"], &[]);
    let p = plan(&u, &before, &ex, &shells(), Path::new(KEYS)).unwrap();
    assert_eq!(p.ops.last(), Some(&AccountOp::LockRemoved("old".into())));
    assert!(!p.ops.contains(&AccountOp::LockRemoved("gone".into())));
    assert!(!p.ops.contains(&AccountOp::LockRemoved("root".into())));
    assert_eq!(p.managed, set(&["ann", "old"]));
}

#[test]
fn steps_map_to_the_commands_of_the_original() {
    let line = |op: AccountOp| {
        command_of(&op)
            .into_iter()
            .map(|(p, a)| format!("{p} {}", a.join(" ")))
            .collect::<Vec<_>>()
    };
    let shell = PathBuf::from("/usr/bin/zsh");
    assert_eq!(
        line(AccountOp::CreateAdmin {
            name: "ann".into(),
            shell: shell.clone(),
            no_user_group: false,
        }),
        ["useradd --create-home --shell /usr/bin/zsh ann"]
    );
    assert_eq!(
        line(AccountOp::CreateSystem {
            name: "svc".into(),
            shell: shell.clone(),
            no_user_group: false,
        }),
        ["useradd --system --shell /usr/bin/zsh svc"]
    );
    assert_eq!(
        line(AccountOp::CreateAdmin {
            name: "operator".into(),
            shell,
            no_user_group: true,
        }),
        ["useradd --create-home --shell /usr/bin/zsh --no-user-group operator"]
    );
    assert_eq!(
        line(AccountOp::UnexpireLock("a".into())),
        ["usermod --expiredate= --lock a"]
    );
    assert_eq!(
        line(AccountOp::EnableLinger("appsvc".into())),
        ["loginctl enable-linger appsvc"]
    );
    assert_eq!(
        line(AccountOp::LockRemoved("a".into())),
        ["usermod --lock --expiredate=1 --shell=/usr/sbin/nologin a"]
    );
    assert_eq!(
        line(AccountOp::RemoveFromGroup {
            name: "a".into(),
            group: "sudo".into()
        }),
        ["gpasswd --delete a sudo"]
    );
    assert_eq!(
        line(AccountOp::ChownKey {
            name: "a".into(),
            path: "/k/a".into()
        }),
        ["chown a: /k/a", "chmod 0600 /k/a"]
    );
}

#[test]
fn passwd_and_group_are_parsed() {
    let ex = parse_existing(
        "root:x:0:0:root:/root:/bin/bash\nann:x:1000:1000::/home/ann:/usr/bin/zsh\n",
        "sudo:x:27:ann,bob\npodman:x:990:\n",
    );
    assert_eq!(ex.users, set(&["ann", "root"]));
    assert_eq!(ex.groups["sudo"], set(&["ann", "bob"]));
    assert!(ex.groups["podman"].is_empty());
}

#[test]
fn users_are_found_by_exact_name() {
    use atomix_provision::activate::accounts::{PasswdUser, lookup_user};
    use atomix_provision::store::Owner;
    let passwd = "root:x:0:0:root:/root:/bin/bash\nappsvc2:x:7:7::/:/bin/sh\n\
                  appsvc:x:1000:1000:app:/var/lib/appsvc:/usr/sbin/nologin\nbroken:x:a:1\n\
                  short:x:5:5\n";
    assert_eq!(
        lookup_user(passwd, "appsvc"),
        Some(PasswdUser {
            owner: Owner {
                uid: 1000,
                gid: 1000
            },
            home: PathBuf::from("/var/lib/appsvc"),
        })
    );
    assert_eq!(
        lookup_user(passwd, "root").map(|u| (u.owner, u.home)),
        Some((Owner { uid: 0, gid: 0 }, PathBuf::from("/root")))
    );
    assert_eq!(lookup_user(passwd, "broken"), None);
    assert_eq!(lookup_user(passwd, "short"), None);
    assert_eq!(lookup_user(passwd, "nobody"), None);
}
