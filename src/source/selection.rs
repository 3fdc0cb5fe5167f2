//! Workspace selection: which workspaces this replica polls, from the static list or
//! discovery, filtered by allow, then deny, then the shard. Pure: no I/O, no state.

use crate::config::{ShardSettings, WorkspaceSelection};

/// The shard of a workspace: FNV-1a 64 of its name modulo `count`. Stable across processes,
/// versions and platforms (never Rust's randomly keyed hasher).
pub fn shard_of(workspace: &str, count: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in workspace.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(count.max(1))) as u32
}

/// The workspaces this replica polls: `names` filtered by allow, then deny, then the shard;
/// sorted and unique. Pure, so a workspace's shard depends on its name alone.
pub fn select_workspaces(
    names: Vec<String>,
    selection: &WorkspaceSelection,
    shard: ShardSettings,
) -> Vec<String> {
    let mut selected: Vec<String> = names
        .into_iter()
        .filter(|name| {
            selection
                .allow
                .as_ref()
                .is_none_or(|allow| allow.is_match(name))
        })
        .filter(|name| {
            selection
                .deny
                .as_ref()
                .is_none_or(|deny| !deny.is_match(name))
        })
        .filter(|name| shard.count <= 1 || shard_of(name, shard.count) == shard.index)
        .collect();
    selected.sort();
    selected.dedup();
    selected
}

/// Whether [`select_workspaces`] keeps every name it is given from discovery: no static list,
/// no allow or deny pattern, one shard. A source can then skip filtering by name altogether.
pub fn selects_everything(selection: &WorkspaceSelection, shard: ShardSettings) -> bool {
    selection.static_list.is_empty()
        && selection.allow.is_none()
        && selection.deny.is_none()
        && shard.count <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_workspaces() {
        let names: Vec<String> = (0..1000).map(|i| format!("workspace-{i}")).collect();
        for count in [1u32, 2, 3, 4, 7] {
            let mut seen = 0;
            for index in 0..count {
                seen += names
                    .iter()
                    .filter(|name| shard_of(name, count) == index)
                    .count();
            }
            assert_eq!(
                seen,
                names.len(),
                "count {count}: every workspace in exactly one shard"
            );
        }
    }

    #[test]
    fn shard_of_is_stable_across_releases() {
        // Pinned values: changing the hash would move every workspace to another replica.
        assert_eq!(shard_of("acme-support", 4), shard_of("acme-support", 4));
        assert_eq!(shard_of("", 3), (0xcbf2_9ce4_8422_2325u64 % 3) as u32);
    }

    fn shards(names: &[String], count: u32, selection: &WorkspaceSelection) -> Vec<Vec<String>> {
        (0..count)
            .map(|index| {
                select_workspaces(names.to_vec(), selection, ShardSettings { count, index })
            })
            .collect()
    }

    #[test]
    fn adding_or_removing_workspaces_moves_no_other_workspace_and_the_union_stays_whole() {
        let everything = WorkspaceSelection {
            static_list: Vec::new(),
            allow: None,
            deny: None,
        };
        let before: Vec<String> = (0..200).map(|i| format!("ws-{i}")).collect();
        let mut after: Vec<String> = before
            .iter()
            .filter(|name| !name.ends_with('7'))
            .cloned()
            .collect();
        after.extend((200..260).map(|i| format!("ws-{i}")));
        for count in [2u32, 3, 4] {
            let old = shards(&before, count, &everything);
            let new = shards(&after, count, &everything);
            let mut union: Vec<String> = new.concat();
            union.sort();
            let mut expected = after.clone();
            expected.sort();
            assert_eq!(
                union, expected,
                "count {count}: disjoint shards whose union is the new set"
            );
            for (index, shard) in new.iter().enumerate() {
                for name in shard.iter().filter(|name| before.contains(name)) {
                    assert!(
                        old[index].contains(name),
                        "count {count}: {name} moved away from shard {index}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_discovery_without_patterns_or_shards_selects_everything() {
        let everything = WorkspaceSelection {
            static_list: Vec::new(),
            allow: None,
            deny: None,
        };
        let one = ShardSettings { count: 1, index: 0 };
        assert!(selects_everything(&everything, one));
        assert!(!selects_everything(
            &everything,
            ShardSettings { count: 4, index: 1 }
        ));
        let listed = WorkspaceSelection {
            static_list: vec!["acme".into()],
            ..everything.clone()
        };
        assert!(!selects_everything(&listed, one));
        let denied = WorkspaceSelection {
            deny: Some(regex::Regex::new("^(?:x)$").expect("regex")),
            ..everything
        };
        assert!(!selects_everything(&denied, one));
    }

    #[test]
    fn allow_then_deny_then_shard() {
        let selection = WorkspaceSelection {
            static_list: Vec::new(),
            allow: Some(regex::Regex::new("^(?:prod-.*)$").expect("regex")),
            deny: Some(regex::Regex::new("^(?:prod-test)$").expect("regex")),
        };
        let names = vec![
            "prod-a".to_string(),
            "prod-test".into(),
            "dev-a".into(),
            "prod-a".into(),
        ];
        let selected = select_workspaces(names, &selection, ShardSettings { count: 1, index: 0 });
        assert_eq!(selected, ["prod-a"]);
    }
}
