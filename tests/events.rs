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

#[test]
fn eventfd() {
    assert_program_passes("events/eventfd", Link::Static);
}

#[test]
fn timerfd() {
    assert_program_passes("events/timerfd", Link::Static);
}

#[test]
fn signalfd_static() {
    assert_program_passes("events/signalfd", Link::Static);
}

#[test]
fn signalfd_dynamic() {
    assert_program_passes("events/signalfd", Link::Dynamic);
}

#[test]
fn pipes_static() {
    assert_program_passes("events/pipes", Link::Static);
}

#[test]
fn pipes_static_pie() {
    assert_program_passes("events/pipes", Link::StaticPie);
}

/// Python's selectors.EpollSelector reading a subprocess's output through
/// a pipe, with timeouts. (asyncio itself needs socketpair for its
/// self-pipe, which the sandbox does not offer yet.)
#[test]
fn python_epoll_selector() {
    assert_same(&[
        "/usr/bin/python3",
        "-c",
        "import os, selectors, subprocess\n\
         sel = selectors.EpollSelector()\n\
         r, w = os.pipe()\n\
         p = subprocess.Popen(['sh', '-c', 'echo one; sleep 0.05; echo two'], stdout=w)\n\
         os.close(w)\n\
         sel.register(r, selectors.EVENT_READ, 'child')\n\
         out = b''\n\
         while True:\n\
         \x20   events = sel.select(timeout=5)\n\
         \x20   data = os.read(events[0][0].fd, 100)\n\
         \x20   if not data: break\n\
         \x20   out += data\n\
         print(events[0][0].data, out.split(), p.wait())\n\
         sel.close()\n",
    ]);
}
