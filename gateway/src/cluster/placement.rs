//! Viewer placement (issue 11 item 7): which node a new WebRTC viewer of a room watches on.
//!
//! Every node's heartbeat ([`super::registry`]) carries its load: WebRTC viewers, CPU, its
//! viewer limit (`cluster.max_viewers`) and, per room it serves, its viewers there and whether
//! it has the room's stage media (a relay in, or a publisher of the stage). [`choose`] (pure)
//! applies the rule to those registrations, this node's own fresh from its state:
//!
//! 1. **Capacity, cluster-wide**: the room's viewers summed over the live nodes at
//!    `hls.max_webrtc_viewers` or more → HLS (the overflow rule of [`crate::overflow`], counted
//!    on every node).
//! 2. A node *has room* when it is ready, not draining, under its viewer limit and under the
//!    CPU limit (`hls.max_cpu_percent`, 0: no CPU check).
//! 3. This node if it has room (the load balancer in front already spread the viewers; no
//!    redirect, and a node without the room's media opens one relay for it).
//! 4. Else, among the other nodes with room, the least loaded of those that already have the
//!    room's media (a relay in, or its publisher): a viewer costs nothing upstream there, so
//!    the origins' cost grows with edges, not with viewers; else the least loaded with room.
//! 5. No node has room → HLS (cause: CPU when some node is only over the CPU limit, else
//!    capacity).
//!
//! The heartbeats are up to ~2 s old, so a burst of joins within one heartbeat may overshoot
//! a node's limit by what it admits meanwhile; the node's own count is fresh.
//!
//! `GET /api/rooms/{room}/join` answers with the chosen node's URLs; `POST /api/whep/{room}`
//! on a node that is not the choice answers `307 Temporary Redirect` to the chosen node's
//! WHEP endpoint (RFC 9110 §15.4.8: the client repeats the POST with its body there), which
//! browsers' `fetch` follows by itself.

use super::registry::NodeInfo;
use crate::overflow::Cause;

/// Where a new viewer goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// This node.
    Here,
    /// Another node (its registration).
    Node(NodeInfo),
    /// Nobody: the LL-HLS program.
    Hls(Cause),
}

/// The limits of the rule (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `hls.max_webrtc_viewers`: the room's WebRTC viewers, cluster-wide.
    pub room_viewers: u64,
    /// `hls.max_cpu_percent` (0: no CPU check).
    pub cpu_percent: u32,
}

/// The room's viewers on `node` and whether `node` has its media.
fn room_load(node: &NodeInfo, room: i64) -> (u64, bool) {
    node.load
        .rooms
        .iter()
        .find(|r| r.room == room)
        .map_or((0, false), |r| (r.viewers, r.media))
}

/// A node's WebRTC viewers (all rooms).
fn viewers(node: &NodeInfo) -> u64 {
    let per_room: u64 = node.load.rooms.iter().map(|r| r.viewers).sum();
    node.load.webrtc_viewers.max(per_room)
}

fn over_cpu(node: &NodeInfo, limits: Limits) -> bool {
    limits.cpu_percent > 0
        && node
            .load
            .cpu_percent
            .is_some_and(|c| c > limits.cpu_percent as f32)
}

fn has_room(node: &NodeInfo, limits: Limits) -> bool {
    node.ready
        && !node.draining
        && (node.max_viewers == 0 || viewers(node) < node.max_viewers)
        && !over_cpu(node, limits)
}

/// Places a new viewer of `room` (store id): `me` is this node's registration as of now,
/// `others` the other live nodes' (from the registry; an entry with `me`'s id is ignored).
pub fn choose(me: &NodeInfo, others: &[NodeInfo], room: i64, limits: Limits) -> Choice {
    let nodes: Vec<&NodeInfo> = std::iter::once(me)
        .chain(others.iter().filter(|n| n.node_id != me.node_id))
        .collect();
    let total: u64 = nodes.iter().map(|n| room_load(n, room).0).sum();
    if total >= limits.room_viewers {
        return Choice::Hls(Cause::Capacity);
    }
    let open: Vec<&NodeInfo> = nodes
        .iter()
        .copied()
        .filter(|n| has_room(n, limits))
        .collect();
    let least = |list: &[&NodeInfo]| -> Option<NodeInfo> {
        list.iter()
            .min_by(|a, b| {
                viewers(a).cmp(&viewers(b)).then_with(|| {
                    let (ca, cb) = (a.load.cpu_percent, b.load.cpu_percent);
                    ca.unwrap_or(0.0).total_cmp(&cb.unwrap_or(0.0))
                })
            })
            .map(|n| (*n).clone())
    };
    if has_room(me, limits) {
        return Choice::Here;
    }
    let with_media: Vec<&NodeInfo> = open
        .iter()
        .copied()
        .filter(|n| room_load(n, room).1)
        .collect();
    if let Some(node) = least(&with_media).or_else(|| least(&open)) {
        return Choice::Node(node);
    }
    if nodes.iter().any(|n| over_cpu(n, limits)) {
        Choice::Hls(Cause::Cpu)
    } else {
        Choice::Hls(Cause::Capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::registry::{CLUSTER_PROTOCOL_VERSION, Load, RoomLoad};

    fn node(id: &str, viewers: u64, max: u64, rooms: &[(i64, u64, bool)]) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            internal_url: format!("http://{id}"),
            protocol: CLUSTER_PROTOCOL_VERSION,
            started_at_ms: 0,
            sent_at_ms: 0,
            ready: true,
            draining: false,
            public_url: Some(format!("https://{id}.example")),
            max_viewers: max,
            load: Load {
                webrtc_viewers: viewers,
                rooms: rooms
                    .iter()
                    .map(|&(room, viewers, media)| RoomLoad {
                        room,
                        viewers,
                        media,
                    })
                    .collect(),
                ..Load::default()
            },
        }
    }

    const LIMITS: Limits = Limits {
        room_viewers: 100,
        cpu_percent: 80,
    };

    fn id(c: &Choice) -> &str {
        match c {
            Choice::Here => "here",
            Choice::Node(n) => &n.node_id,
            Choice::Hls(_) => "hls",
        }
    }

    #[test]
    fn a_node_with_room_keeps_its_viewer_and_a_full_one_sends_it_to_the_least_loaded() {
        let a = node("a", 3, 10, &[(1, 3, true)]);
        let b = node("b", 5, 10, &[]);
        let c = node("c", 2, 10, &[]);
        assert_eq!(choose(&a, &[b.clone(), c.clone()], 1, LIMITS), Choice::Here);
        // A full: the least loaded node (none has the room's media).
        let a = node("a", 10, 10, &[(1, 10, true)]);
        assert_eq!(id(&choose(&a, &[b.clone(), c.clone()], 1, LIMITS)), "c");
        // B relays the room already: B, though C has fewer viewers.
        let b = node("b", 5, 10, &[(1, 1, true)]);
        assert_eq!(id(&choose(&a, &[b.clone(), c.clone()], 1, LIMITS)), "b");
        // A node with room keeps its viewer even without the room's media (it relays it).
        let d = node("d", 0, 0, &[]);
        assert_eq!(choose(&d, &[a.clone(), b], 1, LIMITS), Choice::Here);
    }

    #[test]
    fn draining_busy_and_unready_nodes_are_skipped_and_nobody_with_room_means_hls() {
        let a = node("a", 10, 10, &[]);
        let mut b = node("b", 0, 10, &[]);
        b.draining = true;
        let mut c = node("c", 0, 10, &[]);
        c.load.cpu_percent = Some(95.0);
        let mut d = node("d", 0, 10, &[]);
        d.ready = false;
        assert_eq!(
            choose(&a, &[b.clone(), c.clone(), d], 1, LIMITS),
            Choice::Hls(Cause::Cpu)
        );
        assert_eq!(choose(&a, &[b], 1, LIMITS), Choice::Hls(Cause::Capacity));
        // CPU check off: C takes it.
        let no_cpu = Limits {
            cpu_percent: 0,
            ..LIMITS
        };
        assert_eq!(id(&choose(&a, &[c], 1, no_cpu)), "c");
    }

    #[test]
    fn the_room_limit_counts_viewers_on_every_node() {
        let a = node("a", 40, 0, &[(1, 40, true)]);
        let b = node("b", 60, 0, &[(1, 59, true), (2, 1, false)]);
        assert_eq!(
            choose(&a, std::slice::from_ref(&b), 1, LIMITS),
            Choice::Here
        );
        let b = node("b", 61, 0, &[(1, 60, true), (2, 1, false)]);
        assert_eq!(
            choose(&a, std::slice::from_ref(&b), 1, LIMITS),
            Choice::Hls(Cause::Capacity)
        );
        // Another room is not full.
        assert_eq!(choose(&a, &[b], 2, LIMITS), Choice::Here);
        // This node's stale entry in the registry is ignored for its fresh one.
        let stale = node("a", 99, 0, &[(1, 99, true)]);
        assert_eq!(choose(&a, &[stale], 1, LIMITS), Choice::Here);
    }
}
