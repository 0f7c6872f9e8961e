//! How many connections the server keeps open: always fewer than the
//! process may open files, so that the database, the SQLite files and the
//! log always get a descriptor.

/// Descriptors kept out of the connection cap besides the database's: the
/// listener, stdio, the runtime's own, SQLite journals, a margin.
const RESERVED: u64 = 64;

/// Raises the soft limit on open files to the hard one and returns the soft
/// limit now in force (`None` where it cannot be read).
pub fn raise_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        // rlim_t is u64 here, but not on every Unix.
        #[allow(clippy::useless_conversion)]
        Some(u64::from(limit.rlim_cur))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The most connections to keep open: `requested` if given, but never more
/// than the file limit leaves after the database (each SQLite connection
/// holds three files: the database, its WAL and its shared memory).
/// The second value says why a requested cap was lowered.
pub fn connection_cap(
    requested: Option<usize>,
    file_limit: Option<u64>,
    db_connections: u32,
) -> (usize, Option<String>) {
    let safe = file_limit.map(|limit| {
        let reserved = RESERVED + 3 * u64::from(db_connections);
        let cap = if limit > 2 * reserved {
            limit - reserved
        } else {
            limit / 2
        };
        usize::try_from(cap.max(1)).unwrap_or(usize::MAX)
    });
    match (requested, safe) {
        (Some(asked), Some(safe)) if asked > safe => (
            safe,
            Some(format!(
                "--max-connections {asked} is more than the open-file limit allows; using {safe}"
            )),
        ),
        (Some(asked), _) => (asked.max(1), None),
        (None, Some(safe)) => (safe, None),
        // No limit known: a cap that is still far below any usual limit.
        (None, None) => (1024, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_database_and_files() {
        assert_eq!(connection_cap(None, Some(20_000), 8), (20_000 - 88, None));
        assert_eq!(connection_cap(None, Some(256), 8).0, 256 - 88);
        assert_eq!(connection_cap(None, Some(100), 8).0, 50);
        assert_eq!(connection_cap(Some(20), Some(256), 8), (20, None));
        let (cap, why) = connection_cap(Some(10_000), Some(256), 8);
        assert_eq!(cap, 168);
        assert!(why.is_some());
    }
}
