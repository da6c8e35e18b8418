/*
 * A stand-in for the kernel's dma-heap device, for machines that have none (LD_PRELOAD).
 *
 * picamera2 allocates its frame buffers from /dev/dma_heap/{vidbuf_cached,linux,cma} with the
 * DMA_HEAP_IOCTL_ALLOC ioctl and hands the returned dma-buf fds to libcamera. A Raspberry Pi has
 * those heaps; this machine has no /dev/dma_heap at all. This library answers the same calls with
 * memfd buffers, which libcamera and picamera2 mmap like dma-bufs:
 *   - open() of any /dev/dma_heap/ path returns a memfd named HEAP_NAME (the heap handle);
 *   - DMA_HEAP_IOCTL_ALLOC on that handle makes a memfd of the asked length and returns it;
 *   - the dma-buf ioctls ('b': DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME) on a memfd succeed and do
 *     nothing: a memfd's pages are ordinary cached memory, with no device to keep coherent.
 * Everything else is passed to libc. It is test harness only: nothing in the product loads it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-heap.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define HEAP_PREFIX "/dev/dma_heap/"
#define HEAP_NAME "monitor-fake-dma-heap"

static int is_heap_path(const char *path)
{
	return path != NULL && strncmp(path, HEAP_PREFIX, sizeof(HEAP_PREFIX) - 1) == 0;
}

static int open_heap(int flags)
{
	return memfd_create(HEAP_NAME, (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
}

/* The memfd name of fd ("" for anything else), read back from /proc/self/fd. */
static void memfd_name(int fd, char *name, size_t size)
{
	char link[64], target[256];
	ssize_t n;

	name[0] = '\0';
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return;
	target[n] = '\0';
	if (strncmp(target, "/memfd:", 7) == 0)
		snprintf(name, size, "%s", target + 7);
}

static int is_memfd(int fd)
{
	char name[256];

	memfd_name(fd, name, sizeof(name));
	return name[0] != '\0';
}

static int is_heap(int fd)
{
	char name[256];

	memfd_name(fd, name, sizeof(name));
	return strncmp(name, HEAP_NAME, sizeof(HEAP_NAME) - 1) == 0;
}

static int heap_alloc(struct dma_heap_allocation_data *data)
{
	int fd = memfd_create("picamera2-buffer", (data->fd_flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)data->len) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	data->fd = (unsigned int)fd;
	return 0;
}

int ioctl(int fd, unsigned long request, ...)
{
	static int (*next)(int, unsigned long, void *);
	va_list ap;
	void *arg;

	/* The kernel reads the request as 32 bits; Python may pass picamera2's (negative) codes sign-extended. */
	unsigned int command = (unsigned int)request;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (command == DMA_HEAP_IOCTL_ALLOC && is_heap(fd))
		return heap_alloc(arg);
	if (_IOC_TYPE(command) == 'b' && is_memfd(fd))
		return 0;
	if (!next)
		next = (int (*)(int, unsigned long, void *))dlsym(RTLD_NEXT, "ioctl");
	return next(fd, request, arg);
}

/* The open family: a heap path gets a heap handle, anything else goes to libc. */
#define OPEN_WRAPPER(name)                                                              \
	int name(const char *path, int flags, ...)                                      \
	{                                                                               \
		static int (*next)(const char *, int, mode_t);                          \
		va_list ap;                                                             \
		mode_t mode;                                                            \
		if (is_heap_path(path))                                                 \
			return open_heap(flags);                                        \
		va_start(ap, flags);                                                    \
		mode = va_arg(ap, mode_t);                                              \
		va_end(ap);                                                             \
		if (!next)                                                              \
			next = (int (*)(const char *, int, mode_t))dlsym(RTLD_NEXT, #name); \
		return next(path, flags, mode);                                         \
	}

#define OPENAT_WRAPPER(name)                                                                 \
	int name(int dirfd, const char *path, int flags, ...)                                \
	{                                                                                    \
		static int (*next)(int, const char *, int, mode_t);                          \
		va_list ap;                                                                  \
		mode_t mode;                                                                 \
		if (is_heap_path(path))                                                      \
			return open_heap(flags);                                             \
		va_start(ap, flags);                                                         \
		mode = va_arg(ap, mode_t);                                                   \
		va_end(ap);                                                                  \
		if (!next)                                                                   \
			next = (int (*)(int, const char *, int, mode_t))dlsym(RTLD_NEXT, #name); \
		return next(dirfd, path, flags, mode);                                       \
	}

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)
