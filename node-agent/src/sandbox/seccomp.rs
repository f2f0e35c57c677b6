//! The default seccomp filter every sandboxed process runs under: a list of
//! system calls refused with `EPERM`, everything else allowed (the shape of
//! Flatpak's filter for bubblewrap, with Docker's additions).
//!
//! The namespaces and the unprivileged uid already keep a job from the
//! node's files and processes; the filter narrows what of the kernel it can
//! reach at all, since kernel bugs are the way out of a namespace:
//!
//! - the kernel keyrings (`add_key`, `keyctl`, `request_key`), shared
//!   across namespaces by uid;
//! - `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*`: large, often
//!   exploited interfaces no batch job or web app needs;
//! - mounting, namespaces and root changes (`mount`, `umount2`,
//!   `pivot_root`, `chroot`, `unshare`, `setns`, the new mount API), file
//!   handles (`open_by_handle_at`, the classic container escape);
//! - the machine itself: modules, `kexec`, `reboot`, swap, the clock,
//!   accounting, quotas, the kernel log, I/O ports, NUMA memory policy;
//! - `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)`, which push input into a
//!   terminal;
//! - sockets of every family but Unix, IPv4, IPv6 and netlink (`AF_VSOCK`,
//!   `AF_ALG`, `AF_PACKET`, Bluetooth, ...), rarely used and often buggy;
//! - on x86_64, every x32 system call (the second system call table, which
//!   a filter of x86_64 numbers alone would not cover); any other
//!   architecture's calls (32-bit `int 0x80`) end the process.
//!
//! Bubblewrap installs it (`--seccomp FD`) as the last step before running
//! the program, after it has made the namespaces the filter then forbids.

use nix::libc;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};
use std::collections::BTreeMap;

/// System calls refused whatever their arguments.
pub(crate) const DENIED: &[libc::c_long] = &[
    libc::SYS_add_key,
    libc::SYS_keyctl,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_vhangup,
    libc::SYS_move_pages,
    libc::SYS_mbind,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy,
    libc::SYS_migrate_pages,
    libc::SYS_lookup_dcookie,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// Socket families a process may open.
const SOCKET_FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64,
];

/// `ioctl` requests refused.
const DENIED_IOCTLS: &[u64] = &[libc::TIOCSTI, libc::TIOCLINUX];

/// Bit 30 of an x86_64 system call number: the x32 ABI.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .expect("an argument index below 6")
}

fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule with conditions")
}

/// `socket` and `socketpair` with a family outside [`SOCKET_FAMILIES`]:
/// one rule per gap between the allowed families, and one past the last.
fn other_families() -> Vec<SeccompRule> {
    let mut allowed = SOCKET_FAMILIES.to_vec();
    allowed.sort_unstable();
    let mut rules = Vec::new();
    let mut next = 0u64;
    for family in allowed {
        match family - next {
            0 => {}
            1 => rules.push(rule(vec![condition(0, SeccompCmpOp::Eq, next)])),
            _ => rules.push(rule(vec![
                condition(0, SeccompCmpOp::Ge, next),
                condition(0, SeccompCmpOp::Lt, family),
            ])),
        }
        next = family + 1;
    }
    rules.push(rule(vec![condition(0, SeccompCmpOp::Ge, next)]));
    rules
}

/// The filter as classic BPF, ready for bubblewrap's `--seccomp`.
pub fn program() -> BpfProgram {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, Vec::new())).collect();
    rules.insert(libc::SYS_socket, other_families());
    rules.insert(libc::SYS_socketpair, other_families());
    rules.insert(
        libc::SYS_ioctl,
        DENIED_IOCTLS
            .iter()
            .map(|&request| rule(vec![condition(1, SeccompCmpOp::Eq, request)]))
            .collect(),
    );
    let arch = std::env::consts::ARCH
        .try_into()
        .expect("a supported architecture (x86_64, aarch64 or riscv64)");
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .expect("a valid filter");
    let body: BpfProgram = filter.try_into().expect("a filter that compiles");
    let mut program = x32_prefix();
    program.extend(body);
    program
}

/// On x86_64: refuse every x32 call before the x86_64 rules are looked at.
#[cfg(target_arch = "x86_64")]
fn x32_prefix() -> BpfProgram {
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K,
    // BPF_JMP | BPF_JSET | BPF_K, BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const RET_K: u16 = 0x06;
    const ARCH_OFFSET: u32 = 4;
    const NR_OFFSET: u32 = 0;
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, ARCH_OFFSET),
        // Another architecture: on to the main filter, which ends it.
        op(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        op(LD_W_ABS, 0, 0, NR_OFFSET),
        op(JSET_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn x32_prefix() -> BpfProgram {
    Vec::new()
}

/// The program's bytes as the kernel (and bubblewrap) read them.
pub fn to_bytes(program: &[sock_filter]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for op in program {
        bytes.extend_from_slice(&op.code.to_ne_bytes());
        bytes.push(op.jt);
        bytes.push(op.jf);
        bytes.extend_from_slice(&op.k.to_ne_bytes());
    }
    bytes
}

/// What a filter does with one system call (a classic BPF interpreter of
/// the instructions seccomp filters use), for tests of the filter itself.
#[cfg(test)]
pub(crate) fn verdict(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for arg in args {
        data.extend_from_slice(&arg.to_ne_bytes());
    }
    let word = |offset: u32| {
        let at = offset as usize;
        u32::from_ne_bytes(data[at..at + 4].try_into().expect("in seccomp_data"))
    };
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let op = &program[pc];
        let class = op.code & 0x07;
        let src_k = op.code & 0x08 == 0;
        assert!(src_k, "only constant operands: {op:?}");
        pc += 1;
        match class {
            0x00 => {
                assert_eq!(op.code & 0xe0, 0x20, "only absolute loads: {op:?}");
                acc = word(op.k);
            }
            0x04 => {
                acc = match op.code & 0xf0 {
                    0x50 => acc & op.k,
                    other => panic!("ALU op {other:#x}"),
                }
            }
            0x05 => {
                let taken = match op.code & 0xf0 {
                    0x00 => {
                        pc += op.k as usize;
                        continue;
                    }
                    0x10 => acc == op.k,
                    0x20 => acc > op.k,
                    0x30 => acc >= op.k,
                    0x40 => acc & op.k != 0,
                    other => panic!("jump {other:#x}"),
                };
                pc += usize::from(if taken { op.jt } else { op.jf });
            }
            0x06 => return op.k,
            other => panic!("instruction class {other:#x}"),
        }
    }
}
