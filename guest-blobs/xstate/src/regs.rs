//! The register file under test, loaded from and stored to memory with
//! inline assembly: xmm0-15 (ymm0-15 with AVX), the x87 control word and two
//! x87 stack registers, and MXCSR.
//!
//! The compiler never keeps values of its own in these registers
//! (`x86_64-unknown-none` is soft-float), so what the loads put there stays
//! until the hypervisor switches VMs; the loads still declare every register
//! they write as clobbered.

/// The checked state, as memory. One `vectors` row is one YMM register as
/// four 64-bit lanes, low first: lanes 0-1 are XMM*n*, lanes 2-3 the upper
/// half of YMM*n*.
#[repr(C, align(32))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// ymm0-15 (lanes 2-3 unused without AVX).
    pub vectors: [[u64; 4]; 16],
    /// ST(0) and ST(1), as 64-bit integers (FILD/FISTP, exact).
    pub st: [i64; 2],
    /// The x87 control word.
    pub fcw: u16,
    /// MXCSR.
    pub mxcsr: u32,
}

impl State {
    /// All zero.
    pub const fn zeroed() -> State {
        State {
            vectors: [[0; 4]; 16],
            st: [0; 2],
            fcw: 0,
            mxcsr: 0,
        }
    }
}

/// Loads xmm0-15 from lanes 0-1 of `state.vectors` (legacy SSE encoding,
/// which leaves the upper halves of the YMM registers alone), or all of
/// ymm0-15 when `avx`; then resets the x87 unit and loads FCW, MXCSR and the
/// two stack values (ST(1) first, so `state.st[0]` ends on top).
///
/// # Safety
///
/// CR4.OSFXSR must be set and CR0.EM clear; with `avx`, also CR4.OSXSAVE and
/// XCR0 with SSE and AVX. `state.fcw` and `state.mxcsr` must be valid values
/// (MXCSR: no reserved bit set, or LDMXCSR raises #GP).
pub unsafe fn load(state: &State, avx: bool) {
    let vectors = state.vectors.as_ptr();
    if avx {
        // SAFETY: the caller enabled AVX; the loads read the 512 bytes of
        // `vectors` (unaligned forms, though the array is 32-byte aligned).
        unsafe {
            core::arch::asm!(
                "vmovdqu ymm0, [{v}]",
                "vmovdqu ymm1, [{v} + 32]",
                "vmovdqu ymm2, [{v} + 64]",
                "vmovdqu ymm3, [{v} + 96]",
                "vmovdqu ymm4, [{v} + 128]",
                "vmovdqu ymm5, [{v} + 160]",
                "vmovdqu ymm6, [{v} + 192]",
                "vmovdqu ymm7, [{v} + 224]",
                "vmovdqu ymm8, [{v} + 256]",
                "vmovdqu ymm9, [{v} + 288]",
                "vmovdqu ymm10, [{v} + 320]",
                "vmovdqu ymm11, [{v} + 352]",
                "vmovdqu ymm12, [{v} + 384]",
                "vmovdqu ymm13, [{v} + 416]",
                "vmovdqu ymm14, [{v} + 448]",
                "vmovdqu ymm15, [{v} + 480]",
                v = in(reg) vectors,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                options(readonly, nostack, preserves_flags),
            );
        }
    } else {
        // SAFETY: the caller enabled SSE; the loads read lanes 0-1 of each row.
        unsafe {
            core::arch::asm!(
                "movdqu xmm0, [{v}]",
                "movdqu xmm1, [{v} + 32]",
                "movdqu xmm2, [{v} + 64]",
                "movdqu xmm3, [{v} + 96]",
                "movdqu xmm4, [{v} + 128]",
                "movdqu xmm5, [{v} + 160]",
                "movdqu xmm6, [{v} + 192]",
                "movdqu xmm7, [{v} + 224]",
                "movdqu xmm8, [{v} + 256]",
                "movdqu xmm9, [{v} + 288]",
                "movdqu xmm10, [{v} + 320]",
                "movdqu xmm11, [{v} + 352]",
                "movdqu xmm12, [{v} + 384]",
                "movdqu xmm13, [{v} + 416]",
                "movdqu xmm14, [{v} + 448]",
                "movdqu xmm15, [{v} + 480]",
                v = in(reg) vectors,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(readonly, nostack, preserves_flags),
            );
        }
    }
    // SAFETY: FNINIT empties the x87 stack, then two FILDs fill ST(1) and
    // ST(0); FLDCW/LDMXCSR take the caller's valid values. Clobbers: the
    // whole x87 stack (and so the MMX registers it aliases).
    unsafe {
        core::arch::asm!(
            "fninit",
            "fldcw word ptr [{fcw}]",
            "ldmxcsr dword ptr [{mxcsr}]",
            "fild qword ptr [{st} + 8]",
            "fild qword ptr [{st}]",
            fcw = in(reg) &state.fcw,
            mxcsr = in(reg) &state.mxcsr,
            st = in(reg) state.st.as_ptr(),
            out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
            out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
            options(readonly, nostack),
        );
    }
}

/// Stores what [`load`] loads into `state`, changing no register: xmm0-15
/// into lanes 0-1 of `state.vectors` (lanes 2-3 too, from ymm0-15, when
/// `avx`; left alone otherwise), FCW, MXCSR, and ST(0)/ST(1) by pushing a
/// copy of each and popping it as an integer.
///
/// # Safety
///
/// As for [`load`]. With fewer than 7 values on the x87 stack (the guest
/// keeps 2), the copies cannot overflow it.
pub unsafe fn store(state: &mut State, avx: bool) {
    let vectors = state.vectors.as_mut_ptr();
    if avx {
        // SAFETY: the caller enabled AVX; the stores write the 512 bytes of
        // `vectors`, which `state` owns.
        unsafe {
            core::arch::asm!(
                "vmovdqu [{v}], ymm0",
                "vmovdqu [{v} + 32], ymm1",
                "vmovdqu [{v} + 64], ymm2",
                "vmovdqu [{v} + 96], ymm3",
                "vmovdqu [{v} + 128], ymm4",
                "vmovdqu [{v} + 160], ymm5",
                "vmovdqu [{v} + 192], ymm6",
                "vmovdqu [{v} + 224], ymm7",
                "vmovdqu [{v} + 256], ymm8",
                "vmovdqu [{v} + 288], ymm9",
                "vmovdqu [{v} + 320], ymm10",
                "vmovdqu [{v} + 352], ymm11",
                "vmovdqu [{v} + 384], ymm12",
                "vmovdqu [{v} + 416], ymm13",
                "vmovdqu [{v} + 448], ymm14",
                "vmovdqu [{v} + 480], ymm15",
                v = in(reg) vectors,
                options(nostack, preserves_flags),
            );
        }
    } else {
        // SAFETY: the caller enabled SSE; the stores write lanes 0-1 of each row.
        unsafe {
            core::arch::asm!(
                "movdqu [{v}], xmm0",
                "movdqu [{v} + 32], xmm1",
                "movdqu [{v} + 64], xmm2",
                "movdqu [{v} + 96], xmm3",
                "movdqu [{v} + 128], xmm4",
                "movdqu [{v} + 160], xmm5",
                "movdqu [{v} + 192], xmm6",
                "movdqu [{v} + 224], xmm7",
                "movdqu [{v} + 256], xmm8",
                "movdqu [{v} + 288], xmm9",
                "movdqu [{v} + 320], xmm10",
                "movdqu [{v} + 352], xmm11",
                "movdqu [{v} + 384], xmm12",
                "movdqu [{v} + 416], xmm13",
                "movdqu [{v} + 448], xmm14",
                "movdqu [{v} + 480], xmm15",
                v = in(reg) vectors,
                options(nostack, preserves_flags),
            );
        }
    }
    // SAFETY: FNSTCW/STMXCSR only store; each FLD ST(i) / FISTP pair leaves
    // the x87 stack as it was (FISTP of an integer value is exact whatever
    // the rounding mode).
    unsafe {
        core::arch::asm!(
            "fnstcw word ptr [{fcw}]",
            "stmxcsr dword ptr [{mxcsr}]",
            "fld st(0)",
            "fistp qword ptr [{st}]",
            "fld st(1)",
            "fistp qword ptr [{st} + 8]",
            fcw = in(reg) &mut state.fcw,
            mxcsr = in(reg) &mut state.mxcsr,
            st = in(reg) state.st.as_mut_ptr(),
            options(nostack),
        );
    }
}
