//! Which live member should own each partition: the member with the
//! highest rendezvous weight (highest random weight hashing) for the
//! partition. Every node computes it from the member list alone; a join
//! moves only the partitions the new member wins, a leave only the
//! leaver's.

/// FNV-1a of the partition and the member id: stable across processes,
/// versions and platforms, like `PartitionId::of`, then mixed (the
/// finalizer of SplitMix64) so that ids differing in one byte spread.
pub fn weight(partition: u16, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in partition
        .to_be_bytes()
        .into_iter()
        .chain([0])
        .chain(node.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member that should own `partition`; `None` without members. Ties
/// (equal weights) go to the smaller id, so every node agrees.
pub fn owner<'m>(partition: u16, members: &[&'m str]) -> Option<&'m str> {
    members.iter().copied().max_by(|a, b| {
        weight(partition, a)
            .cmp(&weight(partition, b))
            .then_with(|| b.cmp(a))
    })
}

/// The desired owner of every partition `0..count`.
pub fn assignment<'m>(count: u16, members: &[&'m str]) -> Vec<Option<&'m str>> {
    (0..count).map(|p| owner(p, members)).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set("[a-z0-9-]{1,12}", 1..8)
            .prop_map(|s| s.into_iter().collect())
    }

    proptest! {
        #[test]
        fn a_join_moves_only_what_the_new_member_wins(members in ids(), new in "[A-Z]{1,8}", count in 1u16..512) {
            let before: Vec<&str> = members.iter().map(String::as_str).collect();
            let mut after = before.clone();
            after.push(new.as_str());
            let (a, b) = (assignment(count, &before), assignment(count, &after));
            for p in 0..usize::from(count) {
                prop_assert!(a[p] == b[p] || b[p] == Some(new.as_str()), "partition {p}");
            }
        }

        #[test]
        fn a_leave_moves_only_the_leavers_partitions(members in ids(), count in 1u16..512, gone in 0usize..8) {
            let before: Vec<&str> = members.iter().map(String::as_str).collect();
            let gone = before[gone % before.len()];
            let after: Vec<&str> = before.iter().copied().filter(|m| *m != gone).collect();
            let (a, b) = (assignment(count, &before), assignment(count, &after));
            for p in 0..usize::from(count) {
                prop_assert!(a[p] == b[p] || a[p] == Some(gone), "partition {p}");
                prop_assert_ne!(b[p], Some(gone));
            }
        }

        #[test]
        fn every_node_computes_the_same_owner_whatever_the_order(members in ids(), count in 1u16..256) {
            let forward: Vec<&str> = members.iter().map(String::as_str).collect();
            let backward: Vec<&str> = forward.iter().rev().copied().collect();
            prop_assert_eq!(assignment(count, &forward), assignment(count, &backward));
        }

        #[test]
        fn partitions_spread_over_the_members(members in ids()) {
            // 1024 partitions: each of up to 7 members gets at least half
            // its fair share (about 10 standard deviations below it).
            let m: Vec<&str> = members.iter().map(String::as_str).collect();
            let a = assignment(1024, &m);
            for node in &m {
                let got = a.iter().filter(|o| **o == Some(*node)).count();
                prop_assert!(got * 2 * m.len() >= 1024, "{node}: {got} of 1024 over {} members", m.len());
            }
        }
    }

    #[test]
    fn no_members_no_owner() {
        assert_eq!(owner(3, &[]), None);
        assert_eq!(owner(3, &["a"]), Some("a"));
    }
}
