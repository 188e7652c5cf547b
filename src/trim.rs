//! malloc_trim: everything free goes back to the kernel now, without waiting
//! for the purge delay: the calling thread's cached blocks (other threads'
//! caches are theirs alone), empty slabs and SuperSlabs, free pool runs and
//! cached big ranges.

use crate::large;
use crate::slab::registry;
use crate::thread::tls;

/// True if any memory was given back.
pub fn trim() -> bool {
    let heap = tls::heap();
    let mut released = false;
    if heap != tls::sentinel() {
        // SAFETY: a live TLS heap belongs to this thread alone.
        released |= unsafe { (*heap).flush_all() };
    }
    released |= registry::purge_all();
    released |= large::release_all();
    released
}
