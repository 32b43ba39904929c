//! Poll freshness: a signed poll carries its sender's clock and a random
//! nonce. A poll outside [`WINDOW`] of the coordinator's clock, or with a
//! nonce seen within the window, is refused, so a recorded poll cannot be
//! replayed to make an absent member look present (or to supersede the
//! member's own waiting poll). Memory is bounded: per member, the nonces of
//! the last [`WINDOW`], at most [`MAX_PER_MEMBER`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedcredit_crypto::secagg::PartyIndex;
use fedcredit_proto::POLL_NONCE_LEN;

/// How far a poll's clock may be from the coordinator's (either way).
pub(crate) const WINDOW: Duration = Duration::from_secs(120);
/// Polls remembered per member: a member polls a few times a second at
/// most (its backoff starts at 50 ms), so this covers the window.
pub(crate) const MAX_PER_MEMBER: usize = 4096;

type Nonce = [u8; POLL_NONCE_LEN];

/// The polls seen in the last window, per member.
#[derive(Debug, Default)]
pub(crate) struct Freshness {
    seen: Mutex<HashMap<PartyIndex, VecDeque<(u64, Nonce)>>>,
}

impl Freshness {
    /// Admits a poll sent at `sent_unix_ms` with `nonce`, or says why not.
    pub(crate) fn admit(
        &self,
        from: PartyIndex,
        sent_unix_ms: u64,
        nonce: &[u8],
    ) -> Result<(), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.admit_at(now, from, sent_unix_ms, nonce)
    }

    fn admit_at(
        &self,
        now_ms: u64,
        from: PartyIndex,
        sent_unix_ms: u64,
        nonce: &[u8],
    ) -> Result<(), String> {
        let nonce: Nonce = nonce.try_into().map_err(|_| {
            format!(
                "its nonce must be {POLL_NONCE_LEN} bytes, got {} (an older participant?)",
                nonce.len()
            )
        })?;
        let window = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
        let skew = now_ms.abs_diff(sent_unix_ms);
        if skew > window {
            return Err(format!(
                "it was sent {:.1} s {} the coordinator's clock, more than the {} s allowed \
                 (a replay, or a clock out of sync: check NTP on both hosts)",
                skew as f64 / 1000.0,
                if sent_unix_ms < now_ms {
                    "behind"
                } else {
                    "ahead of"
                },
                WINDOW.as_secs()
            ));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let list = seen.entry(from).or_default();
        // Forget what is older than the window: such a poll is refused by
        // its time alone.
        list.retain(|(t, _)| now_ms.abs_diff(*t) <= window);
        if list.iter().any(|(_, n)| *n == nonce) {
            return Err("its nonce was seen before (a replayed poll)".into());
        }
        if list.len() >= MAX_PER_MEMBER {
            return Err(format!(
                "more than {MAX_PER_MEMBER} polls within {} s",
                WINDOW.as_secs()
            ));
        }
        list.push_back((sent_unix_ms, nonce));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(i: u32) -> PartyIndex {
        PartyIndex::new(i).expect("index")
    }

    #[test]
    fn a_replayed_poll_is_refused_and_a_new_one_admitted() {
        let f = Freshness::default();
        let now = 1_800_000_000_000;
        f.admit_at(now, p(1), now - 500, &[7; 16]).expect("fresh");
        let e = f
            .admit_at(now + 10, p(1), now - 500, &[7; 16])
            .expect_err("replay");
        assert!(e.contains("seen before"), "{e}");
        // Another member's poll may carry the same bytes.
        f.admit_at(now, p(2), now, &[7; 16]).expect("other member");
        f.admit_at(now + 20, p(1), now + 20, &[8; 16])
            .expect("new nonce");
    }

    #[test]
    fn a_poll_outside_the_window_is_refused_with_the_skew() {
        let f = Freshness::default();
        let now = 1_800_000_000_000;
        let e = f
            .admit_at(now, p(1), now - 121_000, &[1; 16])
            .expect_err("old");
        assert!(e.contains("121.0 s behind"), "{e}");
        let e = f
            .admit_at(now, p(1), now + 200_000, &[1; 16])
            .expect_err("future");
        assert!(e.contains("ahead of"), "{e}");
        let e = f
            .admit_at(now, p(1), now, &[1; 3])
            .expect_err("short nonce");
        assert!(e.contains("16 bytes"), "{e}");
    }

    #[test]
    fn memory_per_member_is_bounded() {
        let f = Freshness::default();
        let now = 1_800_000_000_000;
        for i in 0..MAX_PER_MEMBER {
            let mut n = [0u8; 16];
            n[..8].copy_from_slice(&(i as u64).to_le_bytes());
            f.admit_at(now, p(1), now, &n).expect("admitted");
        }
        let e = f.admit_at(now, p(1), now, &[0xff; 16]).expect_err("full");
        assert!(e.contains("more than"), "{e}");
        // Once the window has passed, old entries are forgotten.
        let later = now + WINDOW.as_millis() as u64 + 1;
        f.admit_at(later, p(1), later, &[0xff; 16])
            .expect("admitted after the window");
    }
}
