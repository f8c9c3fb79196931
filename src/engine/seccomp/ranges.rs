//! The unconditional rules of one action as a compact BPF block: the syscall numbers merged
//! into ranges, two or three instructions per range, where `seccompiler` spends four per
//! number. The kernel converts and JIT-compiles a filter at `seccomp(2)` time in time linear
//! in its length, inside init's critical path after `start`: the built-in baseline's 294
//! unconditional calls fall into 36 ranges (its program went from 1,680 instructions to 305).
//! Pure: builds instructions only.

use seccompiler::{sock_filter, TargetArch};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
/// `seccomp_data.nr` and `seccomp_data.arch`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Sorted, merged ranges of `numbers` (each range inclusive).
pub fn ranges(numbers: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut sorted: Vec<u32> = numbers.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for n in sorted {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// A block that returns `action` for every call of the native architecture whose number is
/// in `numbers`, and falls through to the instruction after it for any other call. A call of
/// another architecture is killed, as `seccompiler`'s own architecture check does (the same
/// number names another call there).
pub fn block(
    numbers: impl IntoIterator<Item = u32>,
    action: u32,
    arch: TargetArch,
) -> Vec<sock_filter> {
    let audit_arch = match arch {
        TargetArch::x86_64 => 0xc000_003e,
        TargetArch::aarch64 => 0xc000_00b7,
        TargetArch::riscv64 => 0xc000_00f3,
    };
    let mut out = vec![
        ins(BPF_LD_W_ABS, 0, 0, ARCH_OFFSET),
        ins(BPF_JEQ_K, 1, 0, audit_arch),
        ins(BPF_RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(BPF_LD_W_ABS, 0, 0, NR_OFFSET),
    ];
    // Every jump is short (at most two instructions ahead), whatever the number of ranges:
    // a miss goes on to the next range's test, and past the last one out of the block.
    for (lo, hi) in ranges(numbers) {
        if lo == hi {
            out.push(ins(BPF_JEQ_K, 0, 1, lo));
        } else {
            out.push(ins(BPF_JGT_K, 2, 0, hi));
            out.push(ins(BPF_JGE_K, 0, 1, lo));
        }
        out.push(ins(BPF_RET_K, 0, 0, action));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_merge_into_inclusive_ranges() {
        assert_eq!(
            ranges([5, 1, 2, 3, 9, 3, 10]),
            vec![(1, 3), (5, 5), (9, 10)]
        );
        assert!(ranges([]).is_empty());
    }
}
