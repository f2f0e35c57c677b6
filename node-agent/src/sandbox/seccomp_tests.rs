use super::seccomp::{program, to_bytes, verdict};
use nix::libc;
use proptest::prelude::*;

#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

fn call(nr: libc::c_long, args: &[u64]) -> u32 {
    let mut all = [0u64; 6];
    all[..args.len()].copy_from_slice(args);
    verdict(&program(), ARCH, nr as u32, all)
}

#[test]
fn ordinary_calls_are_allowed() {
    for nr in [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_openat,
        libc::SYS_mmap,
        libc::SYS_clone,
        libc::SYS_execve,
        libc::SYS_exit_group,
        libc::SYS_futex,
        libc::SYS_epoll_wait,
        libc::SYS_ptrace,
    ] {
        assert_eq!(call(nr, &[]), ALLOW, "syscall {nr}");
    }
}

#[test]
fn the_kernels_riskier_interfaces_are_refused() {
    for nr in [
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_bpf,
        libc::SYS_io_uring_setup,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_mount,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_open_by_handle_at,
        libc::SYS_init_module,
        libc::SYS_kexec_load,
        libc::SYS_reboot,
    ] {
        assert_eq!(call(nr, &[]), EPERM, "syscall {nr}");
    }
}

#[test]
fn sockets_of_the_usual_families_only() {
    for family in [
        libc::AF_UNIX,
        libc::AF_INET,
        libc::AF_INET6,
        libc::AF_NETLINK,
    ] {
        assert_eq!(call(libc::SYS_socket, &[family as u64, 1]), ALLOW);
        assert_eq!(call(libc::SYS_socketpair, &[family as u64, 1]), ALLOW);
    }
    for family in [
        libc::AF_UNSPEC,
        libc::AF_PACKET,
        libc::AF_VSOCK,
        libc::AF_ALG,
        libc::AF_BLUETOOTH,
        libc::AF_KEY,
        libc::AF_TIPC,
        libc::AF_RDS,
        3,
        9,
        11,
        15,
        17,
        0xffff,
    ] {
        assert_eq!(
            call(libc::SYS_socket, &[family as u64, 1]),
            EPERM,
            "{family}"
        );
    }
}

#[test]
fn terminal_injection_is_refused_and_other_ioctls_are_not() {
    assert_eq!(call(libc::SYS_ioctl, &[0, libc::TIOCSTI]), EPERM);
    assert_eq!(call(libc::SYS_ioctl, &[0, libc::TIOCLINUX]), EPERM);
    // The high half of the request is not looked at by the kernel either.
    assert_eq!(
        call(libc::SYS_ioctl, &[0, (1 << 32) | libc::TIOCSTI]),
        EPERM
    );
    assert_eq!(call(libc::SYS_ioctl, &[0, libc::TIOCGWINSZ]), ALLOW);
    assert_eq!(call(libc::SYS_ioctl, &[0, libc::FIONREAD]), ALLOW);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_calls_and_other_architectures_are_refused() {
    let x32 = 0x4000_0000u32;
    let prog = program();
    assert_eq!(verdict(&prog, ARCH, x32 | 250, [0; 6]), EPERM);
    assert_eq!(verdict(&prog, ARCH, x32, [0; 6]), EPERM);
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
    assert_eq!(
        verdict(&prog, AUDIT_ARCH_I386, 3, [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
}

#[test]
fn the_bytes_are_eight_per_instruction() {
    let prog = program();
    let bytes = to_bytes(&prog);
    assert_eq!(bytes.len(), prog.len() * 8);
    assert_eq!(&bytes[..2], &prog[0].code.to_ne_bytes());
    assert_eq!(&bytes[4..8], &prog[0].k.to_ne_bytes());
}

proptest! {
    /// Whatever the numbers, only the listed calls are refused: nothing
    /// else is caught by a rule meant for another call.
    #[test]
    fn a_call_is_refused_only_when_listed(nr in 0u32..1024, args in proptest::array::uniform6(any::<u64>())) {
        let listed = super::seccomp::DENIED.iter().any(|&d| d as u32 == nr);
        let special = [libc::SYS_socket, libc::SYS_socketpair, libc::SYS_ioctl]
            .iter()
            .any(|&s| s as u32 == nr);
        let got = verdict(&program(), ARCH, nr, args);
        if listed {
            prop_assert_eq!(got, EPERM);
        } else if !special {
            prop_assert_eq!(got, ALLOW);
        }
    }
}
