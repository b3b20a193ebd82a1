//! epoll, eventfd, timerfd, signalfd and pipes, natively vs under veil.

mod common;

use common::{assert_program_passes, assert_same, Link};

#[test]
fn epoll_static() {
    assert_program_passes("events/epoll", Link::Static);
}

#[test]
fn epoll_dynamic() {
    assert_program_passes("events/epoll", Link::Dynamic);
}
