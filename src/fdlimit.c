/* Descriptor budget: raise RLIMIT_NOFILE, count what is open, and size
 * max_connections to fit. */
#include "pyruvate/fdlimit.h"

#include <dirent.h>
#include <stddef.h>
#include <sys/resource.h>

/* Hard limits may be "unlimited", which RLIMIT_NOFILE cannot be set to
 * (the kernel caps it at fs.nr_open, 1048576 by default). */
enum { FDLIMIT_UNLIMITED_TARGET = 1048576 };

static unsigned count_open_descriptors(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return 16; /* no /proc: a typical interpreter's count */
    unsigned count = 0;
    /* readdir is safe on a stream no other thread sees (readdir_r is the
     * deprecated one). */
    // cppcheck-suppress readdirCalled
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
        if (entry->d_name[0] != '.')
            count++;
    closedir(dir);
    return count > 0 ? count - 1 : 0; /* the directory's own descriptor */
}

int fdlimit_raise(struct fd_budget *budget)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
        return -1;
    budget->soft_before = budget->soft = (unsigned long)limit.rlim_cur;
    budget->hard = (unsigned long)limit.rlim_max;
    rlim_t target = limit.rlim_max;
    if (target == RLIM_INFINITY || target > FDLIMIT_UNLIMITED_TARGET)
        target = FDLIMIT_UNLIMITED_TARGET;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
        struct rlimit raised = {.rlim_cur = target, .rlim_max = limit.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            budget->soft = (unsigned long)target;
    }
    budget->in_use = count_open_descriptors();
    return 0;
}

unsigned fdlimit_max_connections(unsigned requested, struct fd_budget *budget)
{
    /* An eighth of the limit, within [16, 1024]: room for the files and
     * sockets the application opens per request, logs and our own pipes. */
    unsigned long reserve = budget->soft / 8;
    if (reserve < 16)
        reserve = 16;
    if (reserve > 1024)
        reserve = 1024;
    budget->reserve = (unsigned)reserve;
    unsigned long used = budget->in_use + reserve;
    unsigned long room = budget->soft > used ? budget->soft - used : 1;
    if (room < 1)
        room = 1;
    return room < requested ? (unsigned)room : requested;
}
