//! The cluster and the network: the counted API client, reads (paged lists), writes (server-side
//! apply behind `apply::Cluster`), Events, the Lease, the watch window's watches, registry HTTP and the Pushgateway.

pub mod client;
pub mod events;
pub mod lease;
pub mod pushgateway;
pub mod reads;
pub mod registry;
pub mod watch;
pub mod writes;
