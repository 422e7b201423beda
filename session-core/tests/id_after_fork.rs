//! Session ids after `fork(2)`: the child must not draw the ids its parent
//! draws. A generator whose state lives in the process (`rand`'s `ThreadRng`
//! does not reseed after a fork) fails this: both go on from the same state.
//!
//! A test binary of its own, so that no other test runs beside the fork.
#![cfg(unix)]

use std::io::{Read as _, Write as _};

use fork::{fork, waitpid, Fork};
use session_core::Id;

const IDS: usize = 8;

#[test]
fn parent_and_child_draw_different_ids() {
    // Draw on this thread first: a per-thread generator now exists, and
    // would be copied into the child as it is.
    let _ = Id::random();
    let (mut from_child, mut to_parent) = std::io::pipe().expect("pipe");
    match fork().expect("fork") {
        Fork::Child => {
            drop(from_child);
            let mut bytes = [0u8; 16 * IDS];
            for chunk in bytes.chunks_exact_mut(16) {
                chunk.copy_from_slice(&Id::random().to_bytes());
            }
            let written = to_parent.write_all(&bytes).is_ok();
            std::process::exit(if written { 0 } else { 1 });
        }
        Fork::Parent(child) => {
            drop(to_parent);
            let parent: Vec<Id> = (0..IDS).map(|_| Id::random()).collect();
            let mut bytes = [0u8; 16 * IDS];
            let read = from_child.read_exact(&mut bytes);
            let status = waitpid(child).expect("wait for the child");
            read.unwrap_or_else(|error| panic!("child ids ({error}), child status {status}"));
            let child: Vec<Id> = bytes
                .chunks_exact(16)
                .map(|chunk| Id(i128::from_le_bytes(chunk.try_into().expect("16 bytes"))))
                .collect();
            for id in &child {
                assert!(
                    !parent.contains(id),
                    "the child drew an id its parent drew too"
                );
            }
            let mut all = parent;
            all.extend(&child);
            all.sort_by_key(|id| id.0);
            all.dedup();
            assert_eq!(all.len(), 2 * IDS);
        }
    }
}
