//! Who holds a TCP listener, through `/proc` (Linux): the check that a
//! worker which binds `PORT` itself (no Unix socket) is the process a task
//! is sent to, not whoever took the port first.
//!
//! The listeners that can take a connection to the worker's address are the
//! LISTEN entries of `/proc/net/tcp` and `/proc/net/tcp6` on its port whose
//! address is that address, the wildcard of its family, or (IPv6) the
//! IPv4-mapped form of it. Each one's socket inode must be held
//! (`socket:[inode]` in `/proc/PID/fd`) by a process of the worker's process
//! group (`/proc/PID/stat`). Only processes of this user can be inspected,
//! so a listener of another user always fails the check.
//!
//! That is read once, when the worker becomes ready (reading the tables
//! walks the kernel's whole TCP hash, milliseconds on a large host). On each
//! new connection [`Owner::still_listening`] only checks that the group
//! still has those listeners open: while it does, the port stays bound to
//! the worker, so nobody else can listen on it (short of `SO_REUSEPORT`
//! from the same user, who could as well trace the worker).
//!
//! Off Linux there is no `/proc/net`: both checks accept every listener, and
//! only Unix-socket workers are known to be the right process.

use std::net::SocketAddr;

use parking_lot::Mutex;

/// The process group of one worker, and the listeners found to be its own.
#[derive(Debug)]
pub(crate) struct Owner {
    pgid: u32,
    listeners: Mutex<Vec<u64>>,
}

impl Owner {
    pub fn new(pgid: u32) -> Self {
        Self {
            pgid,
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// Checks that every listener that can take a connection to `target` is
    /// held by a process of the group, and remembers them; the reason when
    /// not. Reads the kernel's TCP tables, which costs milliseconds on a
    /// host with large tables: once per worker start. Blocking: call it off
    /// the async runtime.
    #[cfg(target_os = "linux")]
    pub fn verify(&self, target: SocketAddr) -> Result<(), String> {
        let listeners = linux::listeners_for(target)
            .map_err(|e| format!("cannot check who listens on {target}: {e}"))?;
        if listeners.is_empty() {
            return Err(format!("nothing listens on {target}"));
        }
        let inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
        let held = linux::group_sockets(self.pgid, &inodes);
        if let Some(l) = listeners.iter().find(|l| !held.contains(&l.inode)) {
            let who = linux::holder(l.inode).unwrap_or_else(|| {
                format!("a process of uid {} that this engine cannot inspect", l.uid)
            });
            return Err(format!(
                "the listener on {} belongs to {who}, not to the worker (process group {}); \
                 no task is sent to it",
                l.addr, self.pgid
            ));
        }
        *self.listeners.lock() = inodes;
        Ok(())
    }

    /// Checks, cheaply (the group's open files, not the TCP tables), that
    /// the group still holds every listener [`Owner::verify`] found. While
    /// it does, the port stays bound to the worker and nobody else can
    /// listen on it; a worker that exited or closed its listener fails
    /// this, even before the engine notices. Blocking, like `verify`.
    #[cfg(target_os = "linux")]
    pub fn still_listening(&self) -> Result<(), String> {
        let inodes = self.listeners.lock().clone();
        if inodes.is_empty() {
            return Err("the worker's listener was never checked".into());
        }
        if linux::group_sockets(self.pgid, &inodes).len() == inodes.len() {
            return Ok(());
        }
        Err(format!(
            "the worker (process group {}) no longer holds the listener it was checked with; \
             no task is sent to its port",
            self.pgid
        ))
    }

    /// Without `/proc/net`, a TCP listener cannot be traced to a process.
    #[cfg(not(target_os = "linux"))]
    pub fn verify(&self, _target: SocketAddr) -> Result<(), String> {
        let _ = (self.pgid, &self.listeners);
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn still_listening(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A LISTEN entry of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    pub addr: SocketAddr,
    pub uid: u32,
    pub inode: u64,
}

/// The LISTEN entries of a `/proc/net/tcp` or `tcp6` table.
pub(crate) fn parse_listeners(table: &str) -> Vec<Listener> {
    table.lines().skip(1).filter_map(parse_line).collect()
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`
fn parse_line(line: &str) -> Option<Listener> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let state = fields.nth(1)?;
    if state != "0A" {
        return None;
    }
    let uid = fields.nth(3)?.parse().ok()?;
    let inode = fields.nth(1)?.parse().ok()?;
    let (ip, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(Listener {
        addr: SocketAddr::new(parse_ip(ip)?, port),
        uid,
        inode,
    })
}

/// The kernel prints an address as 32-bit words in host byte order.
fn parse_ip(hex: &str) -> Option<std::net::IpAddr> {
    let word = |i: usize| {
        let w = hex.get(i * 8..i * 8 + 8)?;
        u32::from_str_radix(w, 16).ok().map(u32::to_ne_bytes)
    };
    match hex.len() {
        8 => Some(std::net::Ipv4Addr::from(word(0)?).into()),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            Some(std::net::Ipv6Addr::from(bytes).into())
        }
        _ => None,
    }
}

/// Whether a listener bound to `listener` can take a connection to
/// `target`.
pub(crate) fn reaches(listener: SocketAddr, target: SocketAddr) -> bool {
    use std::net::IpAddr::{V4, V6};
    if listener.port() != target.port() {
        return false;
    }
    match (listener.ip(), target.ip()) {
        (V4(l), V4(t)) => l == t || l.is_unspecified(),
        // `::` may be dual-stack (whether it is is not in the table).
        (V6(l), V4(t)) => {
            l.is_unspecified()
                || l.to_ipv4_mapped()
                    .is_some_and(|m| m == t || m.is_unspecified())
        }
        (V6(l), V6(t)) => l == t || l.is_unspecified(),
        (V4(_), V6(_)) => false,
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashSet;
    use std::io;
    use std::net::SocketAddr;

    use super::{Listener, parse_listeners, reaches};

    /// The listeners that can take a connection to `target`.
    pub fn listeners_for(target: SocketAddr) -> io::Result<Vec<Listener>> {
        let mut tables = vec!["/proc/net/tcp6"];
        if target.is_ipv4() {
            tables.push("/proc/net/tcp");
        }
        let mut found = Vec::new();
        for table in tables {
            let text = match std::fs::read_to_string(table) {
                Ok(text) => text,
                // No IPv6 on this host.
                Err(e) if e.kind() == io::ErrorKind::NotFound && table.ends_with('6') => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{table}: {e}"))),
            };
            found.extend(
                parse_listeners(&text)
                    .into_iter()
                    .filter(|l| reaches(l.addr, target)),
            );
        }
        Ok(found)
    }

    /// Which of `wanted` the processes of group `pgid` hold. The leader
    /// (the worker itself) is looked at first; the other processes only
    /// when it does not hold them all.
    pub fn group_sockets(pgid: u32, wanted: &[u64]) -> HashSet<u64> {
        let mut held = HashSet::new();
        sockets_of(pgid, wanted, &mut held);
        if held.len() == wanted.len() {
            return held;
        }
        for pid in pids() {
            if pid != pgid && pgid_of(pid) == Some(pgid) {
                sockets_of(pid, wanted, &mut held);
            }
        }
        held
    }

    /// Best effort, for the message: the process holding `inode`.
    pub fn holder(inode: u64) -> Option<String> {
        pids().find_map(|pid| {
            let mut held = HashSet::new();
            sockets_of(pid, &[inode], &mut held);
            (!held.is_empty()).then(|| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("pid {pid} ({})", comm.trim())
            })
        })
    }

    fn pids() -> impl Iterator<Item = u32> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
    }

    fn pgid_of(pid: u32) -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and `)`.
        let (_, rest) = stat.rsplit_once(')')?;
        rest.split_whitespace().nth(2)?.parse().ok()
    }

    /// Adds to `held` those of `wanted` that `pid` has open. Processes that
    /// are gone or not ours to inspect hold nothing.
    fn sockets_of(pid: u32, wanted: &[u64], held: &mut HashSet<u64>) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|i| wanted.contains(i)) {
                held.insert(inode);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 5151 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 77 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 78 1 0000000000000000 100 0 0 10 0
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn listen_entries_are_parsed_with_owner_and_inode() {
        assert_eq!(
            parse_listeners(TCP),
            vec![
                Listener {
                    addr: addr("127.0.0.1:8080"),
                    uid: 1000,
                    inode: 4242
                },
                Listener {
                    addr: addr("0.0.0.0:22"),
                    uid: 0,
                    inode: 17
                },
            ],
            "the established connection is not a listener"
        );
        assert_eq!(
            parse_listeners(TCP6),
            vec![
                Listener {
                    addr: addr("[::1]:8080"),
                    uid: 1001,
                    inode: 77
                },
                Listener {
                    addr: addr("[::ffff:127.0.0.1]:9000"),
                    uid: 1000,
                    inode: 78
                },
            ]
        );
        assert!(parse_listeners("header only\n garbage line\n").is_empty());
    }

    #[test]
    fn listeners_that_can_take_a_connection() {
        let v4 = addr("127.0.0.1:8080");
        let v6 = addr("[::1]:8080");
        for (listener, target, expected) in [
            ("127.0.0.1:8080", v4, true),
            ("0.0.0.0:8080", v4, true),
            ("[::]:8080", v4, true),
            ("[::ffff:127.0.0.1]:8080", v4, true),
            ("127.0.0.2:8080", v4, false),
            ("[::1]:8080", v4, false),
            ("127.0.0.1:8081", v4, false),
            ("[::1]:8080", v6, true),
            ("[::]:8080", v6, true),
            ("0.0.0.0:8080", v6, false),
            ("127.0.0.1:8080", v6, false),
        ] {
            assert_eq!(
                reaches(addr(listener), target),
                expected,
                "{listener} -> {target}"
            );
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn own_listener_passes_and_a_strangers_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let target = listener.local_addr().expect("address");
        let me = nix::unistd::getpgrp().as_raw().unsigned_abs();
        let mine = Owner::new(me);
        assert_eq!(mine.verify(target), Ok(()));
        assert_eq!(mine.verify(target), Ok(()), "known listeners pass again");
        let err = Owner::new(1).verify(target).expect_err("not group 1's");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(listener);
        let err = mine.verify(target).expect_err("nothing listens");
        assert!(err.contains("nothing listens"), "{err}");
    }
}
