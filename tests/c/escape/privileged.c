/*
 * Kernel facilities the sandbox never reaches, as root (every capability)
 * and as nobody: argv[1] names the family (modules, keys, bpf, perf,
 * io_uring).
 */
#define _GNU_SOURCE
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "../escape.h"

static const char *family;

static void attempts(const char *who)
{
	if (!strcmp(family, "modules")) {
		static char image[64] = "\177ELF";
		int fd = open("/privileged", O_RDONLY);
		report("%s: init_module = %s", who, RES(syscall(SYS_init_module, image, sizeof image, "")));
		report("%s: finit_module = %s", who, RES(syscall(SYS_finit_module, fd, "", 0)));
		report("%s: delete_module = %s", who,
		       RES(syscall(SYS_delete_module, "ext4", O_NONBLOCK)));
		close(fd);
	} else if (!strcmp(family, "keys")) {
		/* KEY_SPEC_SESSION_KEYRING, KEYCTL_GET_KEYRING_ID */
		report("%s: add_key = %s", who, RES(syscall(SYS_add_key, "user", "k", "v", 1, -3)));
		report("%s: request_key = %s", who,
		       RES(syscall(SYS_request_key, "user", "k", NULL, 0)));
		report("%s: keyctl = %s", who, RES(syscall(SYS_keyctl, 0, -3, 0)));
	} else if (!strcmp(family, "bpf")) {
		union bpf_attr attr = {.map_type = BPF_MAP_TYPE_ARRAY,
				       .key_size = 4,
				       .value_size = 4,
				       .max_entries = 1};
		report("%s: bpf map create = %s", who,
		       RES(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr)));
		struct bpf_insn prog[] = {{.code = BPF_JMP | BPF_EXIT}};
		union bpf_attr load = {.prog_type = BPF_PROG_TYPE_SOCKET_FILTER,
				       .insns = (unsigned long)prog,
				       .insn_cnt = 1,
				       .license = (unsigned long)"GPL"};
		report("%s: bpf prog load = %s", who,
		       RES(syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load)));
	} else if (!strcmp(family, "perf")) {
		struct perf_event_attr attr = {.type = PERF_TYPE_HARDWARE,
					       .size = sizeof attr,
					       .config = PERF_COUNT_HW_CPU_CYCLES};
		report("%s: perf_event_open self = %s", who,
		       RES(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0)));
		report("%s: perf_event_open all = %s", who,
		       RES(syscall(SYS_perf_event_open, &attr, -1, 0, -1, 0)));
	} else if (!strcmp(family, "io_uring")) {
		struct io_uring_params p = {0};
		report("%s: io_uring_setup = %s", who, RES(syscall(SYS_io_uring_setup, 8, &p)));
		report("%s: io_uring_enter = %s", who, RES(syscall(SYS_io_uring_enter, 3, 1, 0, 0, NULL, 0)));
		report("%s: io_uring_register = %s", who, RES(syscall(SYS_io_uring_register, 3, 0, NULL, 0)));
	} else {
		report("unknown family %s", family);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		report("usage: privileged FAMILY");
		return 2;
	}
	family = argv[1];
	attempts("root");
	as_nobody(attempts);
	return 0;
}
