//! The faulting instruction: what it accessed, how many bytes, and where.
//!
//! A page fault says *which* address was bad and whether it was a write, but not how wide the
//! access was, and a general-protection fault (an aligned SSE load on a misaligned address)
//! says nothing at all. The shim copies the instruction bytes at the pc and the registers;
//! here iced-x86 decodes them (64-bit mode, ip = pc) and lists the instruction's memory
//! accesses, explicit operands and implicit ones alike (`rep movsb` reads `[rsi]` and writes
//! `[rdi]`, `push` writes below `rsp`). Sizes are the element size for string instructions
//! and the vector size for vector ones.

use iced_x86::{
    Decoder, DecoderOptions, InstructionInfoFactory, InstructionInfoOptions, OpAccess, Register,
    UsedMemory,
};

use crate::report::AccessOp;

/// One memory access of the decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsnAccess {
    /// Read or write, from the instruction (read-modify-write counts as a write).
    pub op: AccessOp,
    /// Bytes accessed, `None` when the operand has no fixed size (`xsave`, `fxsave`, ...).
    pub size: Option<u64>,
    /// The effective address computed from the registers, `None` without registers or when
    /// it depends on something they do not hold (an `fs:`/`gs:` base, a vector index).
    pub address: Option<u64>,
}

/// Decodes the instruction at `pc` and picks the memory access the fault is about:
/// the one whose bytes contain `fault_addr` when it is known, else the first one that
/// matches `want` (the shim's read/write bit), else the first one. `None` when the bytes do
/// not decode or the instruction accesses no memory.
pub fn memory_access(
    insn: &[u8],
    pc: u64,
    regs: Option<&[u64; 17]>,
    fault_addr: Option<u64>,
    want: Option<AccessOp>,
) -> Option<InsnAccess> {
    let mut decoder = Decoder::with_ip(64, insn, pc, DecoderOptions::NONE);
    let instruction = decoder.decode();
    if instruction.is_invalid() {
        return None;
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info_options(&instruction, InstructionInfoOptions::NO_REGISTER_USAGE);
    // A `rep` string instruction's accesses have no fixed size (the count is in rcx);
    // the fault is about one element, the size of the instruction's memory operand.
    let element = match instruction.memory_size().size() {
        0 => None,
        n => Some(n as u64),
    };
    let accesses: Vec<InsnAccess> = info
        .used_memory()
        .iter()
        .filter_map(|m| describe(m, regs))
        .map(|a| InsnAccess {
            size: a.size.or(element),
            ..a
        })
        .collect();
    let contains = |a: &InsnAccess, addr: u64| {
        a.address
            .is_some_and(|start| addr.wrapping_sub(start) < a.size.unwrap_or(1).max(1))
    };
    fault_addr
        .and_then(|addr| accesses.iter().find(|a| contains(a, addr)))
        .or_else(|| want.and_then(|op| accesses.iter().find(|a| a.op == op)))
        .or(accesses.first())
        .copied()
}

fn describe(m: &UsedMemory, regs: Option<&[u64; 17]>) -> Option<InsnAccess> {
    let op = match m.access() {
        OpAccess::Read | OpAccess::CondRead => AccessOp::Read,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite => {
            AccessOp::Write
        }
        _ => return None, // `lea`, prefetches: no access
    };
    let size = match m.memory_size().size() {
        0 => None,
        n => Some(n as u64),
    };
    let address = regs.and_then(|regs| m.virtual_address(0, |reg, _, _| register(regs, reg)));
    Some(InsnAccess { op, size, address })
}

/// A register's value from the shim's [`crate::wire::REG_NAMES`] array, or a segment base.
fn register(regs: &[u64; 17], reg: Register) -> Option<u64> {
    // Flat segments have base 0; fs/gs bases are not sent.
    if matches!(
        reg,
        Register::ES | Register::CS | Register::SS | Register::DS
    ) {
        return Some(0);
    }
    let index = match reg.full_register() {
        Register::RAX => 0,
        Register::RCX => 1,
        Register::RDX => 2,
        Register::RBX => 3,
        Register::RSP => 4,
        Register::RBP => 5,
        Register::RSI => 6,
        Register::RDI => 7,
        Register::R8 => 8,
        Register::R9 => 9,
        Register::R10 => 10,
        Register::R11 => 11,
        Register::R12 => 12,
        Register::R13 => 13,
        Register::R14 => 14,
        Register::R15 => 15,
        Register::RIP => 16,
        _ => return None,
    };
    let value = regs[index];
    // A 32-bit address register (`[eax]` with an address-size prefix) uses the low half.
    Some(match reg.size() {
        4 => value & 0xffff_ffff,
        2 => value & 0xffff,
        _ => value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PC: u64 = 0x5555_0000_1234;

    fn regs_with(pairs: &[(usize, u64)]) -> [u64; 17] {
        let mut regs = [0u64; 17];
        for &(i, v) in pairs {
            regs[i] = v;
        }
        regs
    }

    fn access(bytes: &[u8]) -> InsnAccess {
        memory_access(bytes, PC, None, None, None).unwrap()
    }

    #[test]
    fn sizes_of_plain_string_and_vector_accesses() {
        // movzx eax, byte [rax]
        assert_eq!(
            (
                access(&[0x0f, 0xb6, 0x00]).op,
                access(&[0x0f, 0xb6, 0x00]).size
            ),
            (AccessOp::Read, Some(1))
        );
        // mov dword [rax], 1
        let a = access(&[0xc7, 0x00, 0x01, 0x00, 0x00, 0x00]);
        assert_eq!((a.op, a.size), (AccessOp::Write, Some(4)));
        // rep movsb: element size, both sides
        let a = access(&[0xf3, 0xa4]);
        assert_eq!(a.size, Some(1));
        // movsq
        assert_eq!(access(&[0x48, 0xa5]).size, Some(8));
        // rep stosb writes [rdi]
        let a = access(&[0xf3, 0xaa]);
        assert_eq!((a.op, a.size), (AccessOp::Write, Some(1)));
        // movdqa xmm0, [rax]
        assert_eq!(access(&[0x66, 0x0f, 0x6f, 0x00]).size, Some(16));
        // vmovdqu ymm0, [rax]
        assert_eq!(access(&[0xc5, 0xfe, 0x6f, 0x00]).size, Some(32));
        // add dword [rax], 1: read-modify-write
        assert_eq!(access(&[0x83, 0x00, 0x01]).op, AccessOp::Write);
    }

    #[test]
    fn no_access_or_garbage_is_none() {
        // lea rax, [rbx+8]: no memory access
        assert_eq!(
            memory_access(&[0x48, 0x8d, 0x43, 0x08], PC, None, None, None),
            None
        );
        // nop
        assert_eq!(memory_access(&[0x90], PC, None, None, None), None);
        // truncated and invalid
        assert_eq!(memory_access(&[0x0f], PC, None, None, None), None);
        assert_eq!(memory_access(&[], PC, None, None, None), None);
        assert_eq!(memory_access(&[0x06; 16], PC, None, None, None), None); // push es: invalid in 64-bit
    }

    #[test]
    fn effective_address_from_registers() {
        // mov eax, [rbx + rcx*4 + 0x10]
        let regs = regs_with(&[(3, 0x7000_0000), (1, 3)]);
        let a = memory_access(&[0x8b, 0x44, 0x8b, 0x10], PC, Some(&regs), None, None).unwrap();
        assert_eq!(a.address, Some(0x7000_0000 + 12 + 0x10));
        assert_eq!(a.size, Some(4));
        // movdqa xmm0, [rax] at a misaligned address
        let regs = regs_with(&[(0, 0x7000_0ff8)]);
        let a = memory_access(&[0x66, 0x0f, 0x6f, 0x00], PC, Some(&regs), None, None).unwrap();
        assert_eq!(a.address, Some(0x7000_0ff8));
        // mov eax, [rip + 0x10]: relative to the next instruction
        let a = memory_access(&[0x8b, 0x05, 0x10, 0, 0, 0], PC, Some(&regs), None, None).unwrap();
        assert_eq!(a.address, Some(PC + 6 + 0x10));
        // mov eax, [eax] with an address-size prefix uses the low 32 bits
        let regs = regs_with(&[(0, 0xffff_ffff_0000_1000)]);
        let a = memory_access(&[0x67, 0x8b, 0x00], PC, Some(&regs), None, None).unwrap();
        assert_eq!(a.address, Some(0x1000));
        // fs: bases are unknown
        let a = memory_access(&[0x64, 0x8b, 0x00], PC, Some(&regs), None, None).unwrap();
        assert_eq!(a.address, None);
    }

    #[test]
    fn the_access_containing_the_fault_is_chosen() {
        // movsq: reads [rsi], writes [rdi]
        let regs = regs_with(&[(6, 0x1000), (7, 0x2000)]);
        let at = |addr, want| memory_access(&[0x48, 0xa5], PC, Some(&regs), addr, want).unwrap();
        assert_eq!(at(Some(0x2004), None).op, AccessOp::Write);
        assert_eq!(at(Some(0x2004), None).address, Some(0x2000));
        assert_eq!(at(Some(0x1007), None).op, AccessOp::Read);
        assert_eq!(at(None, Some(AccessOp::Write)).address, Some(0x2000));
        // push qword [rax]: reads [rax], writes below rsp
        let regs = regs_with(&[(0, 0x5000), (4, 0x9000)]);
        let a = memory_access(&[0xff, 0x30], PC, Some(&regs), Some(0x8ff8), None).unwrap();
        assert_eq!(
            (a.op, a.size, a.address),
            (AccessOp::Write, Some(8), Some(0x8ff8))
        );
    }
}
