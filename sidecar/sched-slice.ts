// A short CPU time slice for the sidecar's event loop: Linux's EEVDF scheduler (6.12 and later) lets a thread
// ask for a slice shorter than the default (sched_setattr's sched_runtime, for ordinary SCHED_OTHER threads).
// It changes no priority and no share of the CPU, only how soon the thread runs when it wakes: a task with a
// shorter slice gets an earlier deadline, so it is picked sooner and may preempt the task running. A proxy is
// the textbook case: it wakes for a few microseconds of work per request, and each time it waits for another
// task's slice (1.4 ms by default on a two-CPU machine) every request behind it waits too.
//
// Node has no binding for sched_setattr, so the call is made by perl's `syscall` (perl-base is part of every
// Debian and Ubuntu system), on the main thread only (its thread id is the process id): V8's helper threads keep
// the default, and with SCHED_FLAG_RESET_ON_FORK neither the app started with `-- app` nor threads started later
// inherit it. Where it cannot be done (no perl, another OS, a kernel before 6.12) the kernel's default applies.

/** The kernel clamps a requested slice to this range (kernel/sched/syscalls.c). */
export const MIN_SLICE_US = 100;
export const MAX_SLICE_US = 100_000;

/** sched_setattr and sched_getattr by architecture; others are not asked. */
const SYSCALLS: Partial<Record<NodeJS.Architecture, readonly [number, number]>> = { x64: [314, 315], arm64: [274, 275] };

// struct sched_attr, first version (48 bytes): size, policy, flags, nice, priority, runtime, deadline, period.
// SCHED_OTHER (0), SCHED_FLAG_RESET_ON_FORK (1), the thread's own nice value (unchanged: no privilege needed).
// Prints the slice the kernel then reports for the thread (0 before Linux 6.12, which had no slices to report).
const SCRIPT = String.raw`
my ($tid, $ns, $set, $get) = @ARGV;
$! = 0;
my $nice = getpriority(0, $tid);
die "getpriority: $!\n" if $!;
syscall($set, $tid + 0, pack("LLQlLQQQ", 48, 0, 1, $nice, 0, $ns, 0, 0), 0) == 0 or die "sched_setattr: $!\n";
my $attr = "\0" x 48;
syscall($get, $tid + 0, $attr, 48, 0) == 0 or die "sched_getattr: $!\n";
print((unpack("LLQlLQQQ", $attr))[5], "\n");
`;

export type SliceOutcome = { readonly sliceUs: number } | { readonly unavailable: string };

/** Parses --sched-slice: `off`, or 100us-100ms (`250us`, `0.5ms`, `1ms`). Returns µs, or 0 for off. */
export function parseSlice(text: string): number | undefined {
  if (text === 'off') return 0;
  const m = /^(\d+(?:\.\d+)?)(us|µs|ms)$/.exec(text);
  if (!m) return undefined;
  const us = Math.round(Number(m[1]) * (m[2] === 'ms' ? 1000 : 1));
  return us >= MIN_SLICE_US && us <= MAX_SLICE_US ? us : undefined;
}

/** Asks for a `us`-microsecond slice for this process's main thread; resolves with what the kernel then reports. */
export function requestSlice(us: number): Promise<SliceOutcome> {
  const calls = SYSCALLS[process.arch];
  if (process.platform !== 'linux' || !calls) return Promise.resolve({ unavailable: `not on ${process.platform}/${process.arch} (Linux on x64 or arm64 only)` });
  const { execFile } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve) => {
    execFile('perl', ['-e', SCRIPT, String(process.pid), String(us * 1000), String(calls[0]), String(calls[1])], { timeout: 5000 }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        resolve({ unavailable: code === 'ENOENT' ? 'perl is not installed (the request is made through its syscall function)' : (stderr.trim() || err.message) });
        return;
      }
      const ns = Number(stdout.trim());
      if (ns === us * 1000) resolve({ sliceUs: us });
      else resolve({ unavailable: ns > 0 ? `the kernel kept a ${ns / 1000} µs slice` : 'this kernel does not take slice requests (Linux 6.12 or later does)' });
    });
  });
}
