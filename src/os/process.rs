//! What the rest of hakmem asks the kernel and libc about the process and
//! its threads, beyond memory: the environment, ids, resource use, and the
//! futex the purge thread sleeps on. Nothing here allocates.

use core::ffi::CStr;
use core::sync::atomic::AtomicU32;

/// The value of environment variable `key`, if set. getenv allocates
/// nothing, so this is safe from inside the first malloc.
pub fn getenv(key: &CStr) -> Option<&'static [u8]> {
    // SAFETY: key is NUL-terminated; getenv returns null or a C string that
    // stays valid while nobody calls setenv, which is all we need here.
    let value = unsafe { libc::getenv(key.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-null getenv results are NUL-terminated.
    Some(unsafe { CStr::from_ptr(value) }.to_bytes())
}

pub fn pid() -> u64 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u64 }
}

/// The process's peak RSS in KiB (0 if the kernel does not say).
pub fn peak_rss_kib() -> u64 {
    // SAFETY: an all-zero rusage is valid; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: ru is a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_maxrss.max(0) as u64
}

/// The calling thread's thread pointer (its TCB address, `%fs:0`): distinct
/// for every live thread, one load.
#[inline]
pub fn thread_pointer() -> usize {
    let p: usize;
    // SAFETY: on x86-64 Linux %fs:0 holds the TCB's own address; reading it
    // has no side effects.
    unsafe {
        core::arch::asm!("mov {p}, qword ptr fs:[0]", p = out(reg) p,
                         options(pure, readonly, nostack, preserves_flags));
    }
    p
}

/// How many CPUs the process may run on (1 if the kernel will not say).
pub fn cpus() -> usize {
    // SAFETY: cpu_set_t is plain data, zero is a valid (empty) set, and
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let ok = unsafe { libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return 1;
    }
    // SAFETY: CPU_COUNT only reads the set the kernel filled.
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}

/// Gives the CPU to another thread.
pub fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

/// Wakes one thread waiting on `word` (`futex_wait`).
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live word; no memory is passed back.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

/// Sleeps while `word` holds `expected`, at most `timeout` (forever: None),
/// or until `futex_wake`; may also return early.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<&libc::timespec>) {
    let timeout = timeout.map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT on a live word with a valid (or null) relative
    // timeout; it returns at once if the word no longer holds `expected`.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, timeout)
    };
}

/// Copies `out.len()` bytes from `addr` in this process, or returns false
/// (nothing read) if any of them is unmapped or unreadable: a look at a
/// pointer hakmem knows nothing of, without the risk of faulting on it.
pub fn read_memory(addr: usize, out: &mut [u8]) -> bool {
    let local = libc::iovec { iov_base: out.as_mut_ptr() as *mut libc::c_void, iov_len: out.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: out.len() };
    // SAFETY: the kernel writes at most out.len() bytes into `out` and
    // checks the remote range itself (EFAULT instead of a fault).
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == out.len() as isize
}

/// The program break now (the end of the brk heap).
pub fn program_break() -> usize {
    // SAFETY: brk(0) changes nothing and returns the current break.
    unsafe { libc::syscall(libc::SYS_brk, 0usize) as usize }
}

/// Where the brk heap starts (`start_brk`, field 47 of /proc/self/stat);
/// 0 if the kernel does not say.
pub fn heap_start() -> usize {
    let mut buf = [0u8; 2048];
    // SAFETY: a NUL-terminated path; open/read/close allocate nothing.
    let n = unsafe {
        let fd = libc::open(c"/proc/self/stat".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        n
    };
    let text = &buf[..n.max(0) as usize];
    // The command name (field 2) may hold spaces: fields count from after
    // its closing parenthesis, which is field 3's start minus two.
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return 0;
    };
    let field = text[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty()).nth(47 - 3);
    field.map_or(0, |f| f.iter().fold(0usize, |v, &d| v.wrapping_mul(10).wrapping_add(d.wrapping_sub(b'0') as usize)))
}
