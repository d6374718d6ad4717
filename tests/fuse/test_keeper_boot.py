"""A VM boots from a kept mount's disk.img while its serving process is killed
twice (issue 15, test 2; docs/keeper.md).

There is no Linux kernel to boot here, so the test builds a small honest
bootable disk: a boot sector (GNU as, .code16) that reads the 32 MiB after it
with BIOS int 13h extended reads (64 sectors per read), folds every dword into
a checksum (rotate left 1, add), prints a progress dot per MiB on the serial
port, pauses 250 ms per MiB (int 15h AH=86h, so that the boot lasts long
enough for two takeovers on a busy machine), and finally compares the
checksum with the value stored in the boot sector: `OCIFS-BOOT-OK`, or
`OCIFS-BOOT-FAIL ...`. The raw disk is converted to qcow2 (qemu-img) and
pushed as a containerDisk; qemu (TCG) boots `disk.img` of its mount read-only.
The serving process (not the keeper) is killed with SIGKILL after the first
MiB and again after the next takeover has served a few more.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import struct
import subprocess
import threading
import time
from pathlib import Path

from support import images, processes
from support.processes import Mount

from test_keeper import TLS, report_stalls, status, wait_for, wait_new_server

MiB = 1 << 20
PAYLOAD_MIB = 32
BOOT_TIMEOUT = 300  # seconds: TCG on a busy machine

BOOT_S = r"""
.code16
.globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7c00, %sp
    sti
    movb %dl, drive              # the BIOS's boot drive
    movw $msg_start, %si
    call puts
    xorl %edi, %edi              # the checksum
    xorw %bp, %bp                # reads since the last progress dot
next:
    movw $dap, %si
    movb drive, %dl
    movb $0x42, %ah              # extended read: the packet at dap
    int $0x13
    jc read_error
    pushw %ds
    movw $0x1000, %ax
    movw %ax, %ds
    xorw %si, %si
    movw $8192, %cx              # 64 sectors = 8192 dwords
sum:
    roll $1, %edi
    addl (%si), %edi
    addw $4, %si
    loop sum
    popw %ds
    addl $64, dap_lba
    incw %bp
    cmpw $32, %bp                # 32 reads of 32 KiB = 1 MiB
    jne 1f
    xorw %bp, %bp
    movb $'.', %al
    call putc
    movw $0x0003, %cx            # wait 0x3d090 us = 250 ms
    movw $0xd090, %dx
    movb $0x86, %ah
    int $0x15
1:
    subl $64, remaining
    jnz next
    cmpl %edi, expected
    jne bad_sum
    movw $msg_ok, %si
    call puts
    jmp halt
bad_sum:
    movw $msg_bad, %si
    call puts
    jmp halt
read_error:
    movw $msg_readerr, %si
    call puts
halt:
    cli
    hlt
    jmp halt

putc:                            # %al to COM1 once its transmitter is empty
    pushw %dx
    pushw %ax
    movw $0x3fd, %dx
2:  inb %dx, %al
    testb $0x20, %al
    jz 2b
    popw %ax
    movw $0x3f8, %dx
    outb %al, %dx
    popw %dx
    ret

puts:                            # the NUL-terminated string at %si
    lodsb
    testb %al, %al
    jz 3f
    call putc
    jmp puts
3:  ret

msg_start:   .asciz "OCIFS-BOOT-START\r\n"
msg_ok:      .asciz "\r\nOCIFS-BOOT-OK\r\n"
msg_bad:     .asciz "\r\nOCIFS-BOOT-FAIL checksum\r\n"
msg_readerr: .asciz "\r\nOCIFS-BOOT-FAIL read\r\n"
drive:       .byte 0
    .balign 4
dap:         .byte 16, 0         # size, reserved
             .word 64            # sectors
             .word 0, 0x1000     # buffer offset, segment
dap_lba:     .quad 1
    .org 0x1b0
expected:    .long 0             # patched by the test
remaining:   .long 0             # sectors to read, a multiple of 64
    .org 510
    .byte 0x55, 0xaa
"""


def checksum(payload: bytes) -> int:
    """What the boot sector computes: per little-endian dword, rotate left 1 and add."""
    c = 0
    for (d,) in struct.iter_unpack("<I", payload):
        c = (((c << 1) | (c >> 31)) + d) & 0xFFFFFFFF
    return c


def build_disk(workdir: Path) -> tuple[Path, Path]:
    """(raw disk, its qcow2): the boot sector, then PAYLOAD_MIB MiB of seeded random bytes."""
    src, obj, boot = workdir / "boot.S", workdir / "boot.o", workdir / "boot.bin"
    src.write_text(BOOT_S)
    subprocess.run(["as", "--32", "-o", obj, src], check=True, capture_output=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext", "0x7c00", "--oformat", "binary", "-e", "_start",
                    "-o", boot, obj], check=True, capture_output=True)
    sector = bytearray(boot.read_bytes())
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"
    payload = random.Random(15).randbytes(PAYLOAD_MIB * MiB)
    sector[0x1B0:0x1B8] = struct.pack("<II", checksum(payload), len(payload) // 512)
    raw, qcow2 = workdir / "boot.raw", workdir / "boot.qcow2"
    raw.write_bytes(bytes(sector) + payload)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2], check=True,
                   capture_output=True)
    return raw, qcow2


class Console(threading.Thread):
    """qemu's serial console (its stdout), with the arrival time of each byte."""

    def __init__(self, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.proc = proc
        self.text = b""
        self.dots: list[float] = []  # time.monotonic() of each progress dot
        self.lock = threading.Lock()

    def run(self):
        while True:
            b = self.proc.stdout.read(1)
            if not b:
                return
            with self.lock:
                self.text += b
                if b == b"." and b"OCIFS-BOOT-START" in self.text:
                    self.dots.append(time.monotonic())

    def has(self, marker: bytes) -> bool:
        with self.lock:
            return marker in self.text

    def dot_count(self) -> int:
        with self.lock:
            return len(self.dots)


def test_a_vm_boots_while_the_serving_process_is_killed_twice(ocifs, registry, workdir):
    raw, qcow2 = build_disk(workdir)
    ref, _ = images.push_containerdisk(registry, "t/keeper-boot", qcow2.read_bytes())
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        disk = m.dir.resolve() / "disk.img"
        assert os.stat(disk).st_size == raw.stat().st_size  # qemu-img's virtual size
        first = status(m.dir.resolve())[0]
        proc = processes.spawn(
            ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "64", "-smp", "1",
             "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nic", "none",
             "-drive", f"file={disk},format=raw,if=virtio,readonly=on"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        console = Console(proc)
        console.start()
        kills: list[tuple[float, int]] = []  # (time, dots seen before the kill)
        try:
            server = first["server_pid"]
            for min_dots in (1, None):
                need = min_dots if min_dots else console.dot_count() + 3  # the new server served 3 MiB
                wait_for(f"{need} MiB read by the guest", lambda: console.dot_count() >= need
                         or console.has(b"OCIFS-BOOT-OK") or console.has(b"OCIFS-BOOT-FAIL"),
                         timeout=BOOT_TIMEOUT)
                assert not console.has(b"OCIFS-BOOT-OK") and not console.has(b"FAIL"), \
                    f"the boot ended before kill {len(kills) + 1}: {console.text[-200:]!r}"
                kills.append((time.monotonic(), console.dot_count()))
                os.kill(server, signal.SIGKILL)
                server = wait_new_server(m.dir.resolve(), server)["server_pid"]
            wait_for("the boot marker", lambda: console.has(b"OCIFS-BOOT-OK") or console.has(b"FAIL"),
                     timeout=BOOT_TIMEOUT)
        finally:
            processes.stop(proc, timeout=10)
            console.join(10)
        text = console.text.decode(errors="replace")
        assert "OCIFS-BOOT-OK" in text and "FAIL" not in text, text[-300:]
        assert len(console.dots) == PAYLOAD_MIB
        s = status(m.dir.resolve())[0]
        assert s["takeovers"] == 2 and s["keeper_pid"] == first["keeper_pid"]

    # A stall: how much longer than the boot's usual MiB the slowest of the two
    # MiBs that ended after a kill took (the console thread may see a dot late,
    # so the MiB a kill fell in is not known to the dot).
    gaps = [b - a for a, b in zip(console.dots, console.dots[1:])]
    usual = statistics.median(gaps)
    stalls, to_next = [], []
    for t, seen in kills:
        assert seen >= 1 and t > console.dots[0]  # killed while the guest read
        after = [i for i, d in enumerate(console.dots) if d > t and i > 0][:2]
        assert after, "no MiB read after a kill"
        stalls.append(max(0.0, max(console.dots[i] - console.dots[i - 1] for i in after) - usual))
        to_next.append(console.dots[after[0]] - t)
    print(f"\nboot: {PAYLOAD_MIB} MiB, a MiB every {usual * 1000:.0f} ms (median, 250 ms of it the guest's "
          f"pause); from each kill to the guest's next MiB: {', '.join(f'{x * 1000:.0f}' for x in to_next)} ms")
    report_stalls("qemu boot, kill -9 (the MiB's time over the median)", stalls)
