// SPDX-License-Identifier: GPL-2.0
// Hostward's runtime sensor: process lifecycle, outbound TCP and, when asked, a few rare system
// calls (memfd creation, accept, module loads) into one ring buffer, and kill-after-exec of
// quarantined files. Credential changes and ptrace attach come from the proc connector, which
// costs nothing per system call. CO-RE (vmlinux.h from `bpftool btf dump`), tp_btf only:
// tp_btf needs no tracefs and loads on this project's reference kernel, where BPF-LSM, fentry and
// kprobes are refused (`../shared/reference/runtime-sensor-measured.md`).
//
// The record layouts below are mirrored by `src/event.rs` (`#[repr(C)]`); change both together
// and rebuild the committed object with `bpf/build.sh`.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define EV_EXEC 1
#define EV_FORK 2
#define EV_EXIT 3
#define EV_CONNECT 4
#define EV_KILLED 5
#define EV_MEMFD 8
#define EV_ACCEPT 9
#define EV_MODULE 10

#define ARGV_LEN 512
#define PATH_LEN 256
#define CWD_PARTS 8
#define PART_LEN 32

#define S_IFMT 00170000
#define AF_INET 2
#define AF_INET6 10
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

// One of a process's standard descriptors: its file type and, for an inet socket, the peer.
struct fd_info {
	u32 mode;  // i_mode & S_IFMT, 0 when the descriptor is closed
	u16 family;
	u16 sock_type;
	u16 dport; // network order
	u16 sport; // host order
	u32 pad;
	u64 ino;
	u8 daddr[16];
};

struct task_info {
	u32 pid;
	u32 ppid;
	u32 sid;
	u32 uid;
	u32 euid;
	u32 gid;
	u32 egid;
	u32 p_euid;
	char comm[16];
};

struct exec_event {
	u32 kind;
	u32 argv_len;
	u64 ts_ns;
	struct task_info t;
	u64 ino;
	u32 dev;
	u32 mode;
	u32 nlink;
	u32 cwd_parts;
	struct fd_info fds[3];
	struct fd_info pfds[3];
	char tty[32];
	char filename[PATH_LEN];
	char name[64];
	char cwd[CWD_PARTS][PART_LEN];
	char argv[ARGV_LEN];
};

struct small_event {
	u32 kind;
	u32 code; // exit code, or the connect's protocol
	u64 ts_ns;
	struct task_info t;
	u32 child;
	u16 family;
	u16 dport; // network order
	u8 daddr[16];
	u16 sport;
	u16 pad[3];
};

// A system call's outcome: what `kind` it was, its return value and what it was about.
struct sys_event {
	u32 kind;
	s32 ret;
	u64 ts_ns;
	struct task_info t;
	u64 flags;         // memfd_create's flags
	struct fd_info fd; // accept: the new connection
	char name[64];     // memfd_create: its name; finit_module: the file's name
};

struct inode_key {
	u64 ino;
	u32 dev;
	u32 pad;
};

// 1 MiB: about 700 exec records, a third of a second of a 2,000 exec/s storm if the agent
// stalls. Its data pages are mapped twice in the agent (for wrap-around reads), so every MiB
// here is two of the agent's resident memory once touched.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

// [0] events offered, [1] events dropped because the ring buffer was full.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

// Quarantined files by (device, inode): a process that execs one is killed before it runs a
// user instruction.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct inode_key);
	__type(value, u8);
} deny_exec SEC(".maps");

// Scratch space: the exec record is larger than the 512-byte BPF stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct exec_event);
} scratch SEC(".maps");

// Consumers are woken only once a batch is waiting (or the ring is filling): a wakeup per
// event costs the exec-ing task more than the program itself (measured: ~18 us of each
// program's ~20-27 us). The consumer also drains on a short timer, so nothing waits long.
#define WAKEUP_BYTES (32 << 10)

static __always_inline u64 wakeup_flag(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void count(u32 i)
{
	u64 *v = bpf_map_lookup_elem(&stats, &i);
	if (v)
		*v += 1;
}

static __always_inline void fill_task(struct task_info *t, struct task_struct *p)
{
	struct task_struct *parent = BPF_CORE_READ(p, real_parent);
	t->pid = BPF_CORE_READ(p, tgid);
	t->ppid = BPF_CORE_READ(parent, tgid);
	// pid->numbers[] is a flexible array, which aya's CO-RE relocation refuses to index:
	// read the first entry through field offsets instead.
	struct pid *sid = BPF_CORE_READ(p, signal, pids[PIDTYPE_SID]);
	if (sid)
		bpf_probe_read_kernel(&t->sid, sizeof(t->sid),
				      (void *)sid + bpf_core_field_offset(struct pid, numbers) +
					      bpf_core_field_offset(struct upid, nr));
	t->uid = BPF_CORE_READ(p, cred, uid.val);
	t->euid = BPF_CORE_READ(p, cred, euid.val);
	t->gid = BPF_CORE_READ(p, cred, gid.val);
	t->egid = BPF_CORE_READ(p, cred, egid.val);
	t->p_euid = BPF_CORE_READ(parent, cred, euid.val);
	BPF_CORE_READ_STR_INTO(&t->comm, p, comm);
}

// The peer address: 4 bytes for IPv4, 16 for IPv6 (BPF_CORE_READ_INTO would copy one byte, the
// size of the destination's element).
static __always_inline void read_daddr(u8 *out, u16 family, const struct sock *sk)
{
	if (family == AF_INET)
		bpf_core_read(out, 4, &sk->__sk_common.skc_daddr);
	else if (family == AF_INET6)
		bpf_core_read(out, 16, &sk->__sk_common.skc_v6_daddr);
}

static __always_inline void fill_fd(struct fd_info *out, struct task_struct *p, int fd)
{
	struct file **fds = BPF_CORE_READ(p, files, fdt, fd);
	struct file *f = 0;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	out->mode = BPF_CORE_READ(ino, i_mode) & S_IFMT;
	out->ino = BPF_CORE_READ(ino, i_ino);
	if (out->mode != 0140000)
		return;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	out->sock_type = BPF_CORE_READ(sock, type);
	out->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	out->dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	out->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	read_daddr(out->daddr, out->family, sk);
}

// The working directory as up to CWD_PARTS names, innermost first, crossing mounts.
static __always_inline u32 fill_cwd(struct exec_event *e, struct task_struct *p)
{
	struct dentry *d = BPF_CORE_READ(p, fs, pwd.dentry);
	struct vfsmount *vm = BPF_CORE_READ(p, fs, pwd.mnt);
	struct mount *mnt = container_of(vm, struct mount, mnt);
	u32 n = 0;
#pragma unroll
	for (int i = 0; i < CWD_PARTS + 4; i++) {
		struct dentry *root = BPF_CORE_READ(vm, mnt_root);
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (d == root || d == parent) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt)
				break; // the root of the namespace
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vm = &up->mnt;
			continue;
		}
		if (n >= CWD_PARTS)
			return n + 1; // deeper than we keep: userspace marks it cut
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		bpf_probe_read_kernel_str(e->cwd[n & (CWD_PARTS - 1)], PART_LEN, name);
		n++;
		d = parent;
	}
	return n;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct inode_key key = {
		.ino = BPF_CORE_READ(inode, i_ino),
		.dev = BPF_CORE_READ(inode, i_sb, s_dev),
	};
	int killed = bpf_map_lookup_elem(&deny_exec, &key) != 0;
	if (killed)
		bpf_send_signal(9);

	u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	// Only what userspace reads needs clearing: strings and the descriptor slots (the cwd and
	// argv are read up to their counts). A memset of the whole record is not allowed here.
	e->tty[0] = 0;
	e->filename[0] = 0;
	e->name[0] = 0;
	e->argv_len = 0;
	struct fd_info none = {};
#pragma unroll
	for (int i = 0; i < 3; i++) {
		e->fds[i] = none;
		e->pfds[i] = none;
	}
	e->kind = killed ? EV_KILLED : EV_EXEC;
	e->ts_ns = bpf_ktime_get_boot_ns();
	fill_task(&e->t, p);
	e->ino = key.ino;
	e->dev = key.dev;
	e->mode = BPF_CORE_READ(inode, i_mode);
	e->nlink = BPF_CORE_READ(inode, __i_nlink);
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	struct tty_struct *tty = BPF_CORE_READ(p, signal, tty);
	if (tty)
		BPF_CORE_READ_STR_INTO(&e->tty, tty, name);
	struct task_struct *parent = BPF_CORE_READ(p, real_parent);
#pragma unroll
	for (int i = 0; i < 3; i++) {
		fill_fd(&e->fds[i], p, i);
		fill_fd(&e->pfds[i], parent, i);
	}
	e->cwd_parts = fill_cwd(e, p);
	unsigned long start = BPF_CORE_READ(p, mm, arg_start);
	unsigned long end = BPF_CORE_READ(p, mm, arg_end);
	u64 len = end > start ? end - start : 0;
	if (len > ARGV_LEN - 1)
		len = ARGV_LEN - 1;
	// The mask in the call itself is what the verifier needs to see the bound.
	if (len > 0 && bpf_probe_read_user(e->argv, len & (ARGV_LEN - 1), (void *)start) == 0)
		e->argv_len = len & (ARGV_LEN - 1);

	count(0);
	if (bpf_ringbuf_output(&events, e, sizeof(*e), wakeup_flag()))
		count(1);
	return 0;
}

static __always_inline void emit_small(struct small_event *e)
{
	count(0);
	if (bpf_ringbuf_output(&events, e, sizeof(*e), wakeup_flag()))
		count(1);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	// New threads are not new processes.
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	struct small_event e = {};
	e.kind = EV_FORK;
	e.ts_ns = bpf_ktime_get_boot_ns();
	fill_task(&e.t, parent);
	e.child = BPF_CORE_READ(child, tgid);
	emit_small(&e);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p)
{
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0;
	struct small_event e = {};
	e.kind = EV_EXIT;
	e.ts_ns = bpf_ktime_get_boot_ns();
	e.t.pid = BPF_CORE_READ(p, tgid);
	e.code = BPF_CORE_READ(p, exit_code);
	emit_small(&e);
	return 0;
}

// An outbound TCP connection: the socket leaves CLOSE for SYN_SENT inside connect(), so the
// current task is the one connecting.
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_tcp_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (oldstate != TCP_CLOSE || newstate != TCP_SYN_SENT)
		return 0;
	struct small_event e = {};
	e.kind = EV_CONNECT;
	e.code = 6;
	e.ts_ns = bpf_ktime_get_boot_ns();
	fill_task(&e.t, bpf_get_current_task_btf());
	e.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e.dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	e.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (e.family != AF_INET && e.family != AF_INET6)
		return 0;
	read_daddr(e.daddr, e.family, sk);
	emit_small(&e);
	return 0;
}

// x86-64 system call numbers (the object is built for x86 only: vmlinux.h and pt_regs are).
#define NR_INIT_MODULE 175
#define NR_ACCEPT 43
#define NR_ACCEPT4 288
#define NR_FINIT_MODULE 313
#define NR_MEMFD_CREATE 319

// The rare calls that no tracepoint of their own reports (kprobes and fentry are refused on
// the reference kernel). Every system call runs this, so it decides on the number alone and
// returns: a load and a compare for all but the calls it reports. Attached only when the agent
// asks (`syscall_events`): a syscall tracepoint sends every call of every task through the
// kernel's slow path (bench/sensor.sh measures what that costs).
SEC("tp_btf/sys_exit")
int BPF_PROG(handle_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	u32 kind;
	switch (nr) {
	case NR_MEMFD_CREATE:
		kind = EV_MEMFD;
		break;
	case NR_ACCEPT:
	case NR_ACCEPT4:
		kind = EV_ACCEPT;
		break;
	case NR_INIT_MODULE:
	case NR_FINIT_MODULE:
		kind = EV_MODULE;
		break;
	default:
		return 0;
	}
	struct task_struct *p = bpf_get_current_task_btf();
	u64 a0 = regs->di, a1 = regs->si;
	if (kind != EV_MODULE && ret < 0)
		return 0; // a refused module load is still an attempt worth telling
	struct sys_event e = {};
	e.kind = kind;
	e.ret = ret;
	e.ts_ns = bpf_ktime_get_boot_ns();
	fill_task(&e.t, p);
	if (kind == EV_MEMFD) {
		e.flags = a1;
		bpf_probe_read_user_str(e.name, sizeof(e.name), (void *)a0);
	} else if (kind == EV_ACCEPT) {
		fill_fd(&e.fd, p, ret & 0xffff);
		if (e.fd.family != AF_INET && e.fd.family != AF_INET6)
			return 0;
	} else if (nr == NR_FINIT_MODULE) {
		struct file **fds = BPF_CORE_READ(p, files, fdt, fd);
		struct file *f = 0;
		bpf_core_read(&f, sizeof(f), &fds[a0 & 0xffff]);
		if (f)
			bpf_probe_read_kernel_str(e.name, sizeof(e.name), BPF_CORE_READ(f, f_path.dentry, d_name.name));
	}
	count(0);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), wakeup_flag()))
		count(1);
	return 0;
}

// Tier A, where the kernel allows BPF-LSM: refuse the exec of a quarantined file before it
// starts. Loaded on its own, after the tracepoints; a kernel that refuses it (EPERM here) leaves
// the kill-after-exec in handle_exec as the enforcement.
SEC("lsm/bprm_check_security")
int BPF_PROG(deny_exec_lsm, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	struct inode *inode = BPF_CORE_READ(bprm, file, f_inode);
	struct inode_key key = {
		.ino = BPF_CORE_READ(inode, i_ino),
		.dev = BPF_CORE_READ(inode, i_sb, s_dev),
	};
	return bpf_map_lookup_elem(&deny_exec, &key) ? -1 : 0; // -EPERM
}
