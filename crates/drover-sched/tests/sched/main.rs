//! The scheduler's tests: every filter, weight and policy, balancing, power saving, HA
//! ordering and restarts, evacuation, and a scale test with 1,000 hosts and 10,000 VMs.

mod balance;
mod common;
mod filters;
mod ha;
mod policy;
mod power;
mod scale;
mod weights;
