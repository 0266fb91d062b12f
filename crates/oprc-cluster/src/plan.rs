//! What a node must do to move from the partitions' current ownership to
//! the assignment: claim the partitions it should own that are free or
//! lapsed, renew those it holds and should keep, release those it holds
//! that another member should own. Pure.

use oprc_store::cluster::Ownership;

use crate::assign::assignment;

/// One round's steps for one node.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Steps {
    pub claim: Vec<u16>,
    /// `(partition, epoch)`.
    pub renew: Vec<(u16, u64)>,
    /// `(partition, epoch)`: handed to the member that should own it.
    pub release: Vec<(u16, u64)>,
}

/// The steps of `me` among `members` (live, `me` included) over `count`
/// partitions whose records are `ownership`. A partition another node
/// still holds is waited for: that node releases it when it sees the same
/// assignment, or its lease lapses.
pub fn steps(me: &str, members: &[&str], count: u16, ownership: &[Ownership]) -> Steps {
    let desired = assignment(count, members);
    let mut out = Steps::default();
    for (p, want) in (0..count).zip(desired) {
        let record = ownership.iter().find(|o| o.partition == p);
        let mine = want == Some(me);
        match record {
            Some(o) if o.owner.as_deref() == Some(me) => {
                if mine {
                    out.renew.push((p, o.epoch));
                } else {
                    out.release.push((p, o.epoch));
                }
            }
            Some(o) if mine && o.owner.is_some() && !o.lease_left.is_zero() => {}
            _ if mine => out.claim.push(p),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::assign::owner;

    fn held(partition: u16, node: Option<&str>, epoch: u64, left_ms: u64) -> Ownership {
        Ownership {
            partition,
            owner: node.map(str::to_owned),
            epoch,
            lease_left: Duration::from_millis(left_ms),
        }
    }

    #[test]
    fn a_lone_node_claims_everything_then_renews_it() {
        let s = steps("a", &["a"], 4, &[]);
        assert_eq!(s.claim, [0, 1, 2, 3]);
        let mine: Vec<Ownership> = (0..4).map(|p| held(p, Some("a"), 1, 5_000)).collect();
        let s = steps("a", &["a"], 4, &mine);
        assert_eq!(s.renew, [(0, 1), (1, 1), (2, 1), (3, 1)]);
        assert!(s.claim.is_empty() && s.release.is_empty());
    }

    #[test]
    fn a_join_releases_what_the_new_node_wins_and_it_waits_for_that() {
        let count = 32;
        let all: Vec<Ownership> = (0..count).map(|p| held(p, Some("a"), 1, 5_000)).collect();
        let members = ["a", "b"];
        let a = steps("a", &members, count, &all);
        let b = steps("b", &members, count, &all);
        let won: Vec<u16> = (0..count)
            .filter(|p| owner(*p, &members) == Some("b"))
            .collect();
        assert!(!won.is_empty());
        let released: Vec<u16> = a.release.iter().map(|(p, _)| *p).collect();
        assert_eq!(released, won);
        assert_eq!(a.renew.len() + a.release.len(), usize::from(count));
        // a's leases run: b claims nothing yet.
        assert!(b.claim.is_empty(), "{b:?}");
        // Once released (owner cleared) or lapsed, b claims them.
        let after: Vec<Ownership> = all
            .iter()
            .map(|o| {
                if won.contains(&o.partition) {
                    held(o.partition, None, 1, 0)
                } else {
                    o.clone()
                }
            })
            .collect();
        assert_eq!(steps("b", &members, count, &after).claim, won);
    }

    #[test]
    fn a_lapsed_owner_is_taken_over_and_a_lapsed_own_lease_renewed() {
        let records = [held(0, Some("gone"), 4, 0), held(1, Some("a"), 2, 0)];
        let s = steps("a", &["a"], 2, &records);
        assert_eq!(s.claim, [0]);
        assert_eq!(s.renew, [(1, 2)]);
    }
}
