// runtime.cpp -- runs one kernel launch on the CPU (see cuda_emu.h): dlkit's kernels/*.cu in
// the parity tests, a student's kernel inside the grading sandbox.
//
// C entry points (called from Python with ctypes, see launcher.py):
//   dlkit_emu_alloc(nbytes) / dlkit_emu_alloc_low(nbytes) / dlkit_emu_free(ptr, nbytes)
//       "device" memory between two inaccessible guard pages.  dlkit_emu_alloc puts the buffer
//       so that it ENDS at the upper guard page (reading or writing even one element past the
//       end faults at once); dlkit_emu_alloc_low so that it STARTS right after the lower one
//       (one element before the start faults).
//   dlkit_emu_launch(name, grid, block, args, err, errlen, fault)
//       runs kernel `name` over the whole grid.  args[i] points at the value of argument i.
//       Returns 0 when it ran to the end, otherwise an error code and a message in `err`:
//       1 unknown kernel, 2 bad launch configuration, 3 barrier misuse (a __syncthreads or
//       warp shuffle that not every thread reaches), 4 memory fault (*fault = the address).
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "cuda_emu.h"
#include "registry.h"

// Everything is compiled with -fvisibility=hidden, so two builds loaded into one process (the
// real kernels and a deliberately broken copy) keep separate globals; only these are exported.
#define EXPORT __attribute__((visibility("default")))

dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 128 * 1024;  // per thread; a guard page below each stack

enum class State { Runnable, AtSyncthreads, AtWarpBarrier, Done };

struct Thread {
    ucontext_t ctx;
    State state;
};

struct Launch {
    KernelThunk thunk = nullptr;
    void** args = nullptr;
    const char* name = "";
    int nthreads = 0;
    int current = 0;
    std::vector<Thread> threads = std::vector<Thread>(kMaxThreads);
    ucontext_t scheduler;
    unsigned char mailbox[kMaxThreads / 32][32][8];  // [warp][lane]: one shuffled value
    std::string error;                               // set by a thread that misuses a barrier
    sigjmp_buf fault_jump;
    void* fault_address = nullptr;
    bool in_kernel = false;
};

Launch launch;
char* stacks = nullptr;     // kMaxThreads stacks, each with a guard page below it
char* signal_stack = nullptr;

std::map<std::string, KernelThunk>& registry() {
    static std::map<std::string, KernelThunk> table;
    return table;
}

size_t page_size() { return (size_t)sysconf(_SC_PAGESIZE); }

void format_error(std::string& out, const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    out = buf;
}

int linear_thread_id() {
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

void set_thread_index(int t) {
    threadIdx.x = (unsigned)t % blockDim.x;
    threadIdx.y = ((unsigned)t / blockDim.x) % blockDim.y;
    threadIdx.z = (unsigned)t / (blockDim.x * blockDim.y);
}

// Suspend the running thread in `state` and return to the scheduler.
void park(State state) {
    Thread& t = launch.threads[launch.current];
    t.state = state;
    swapcontext(&t.ctx, &launch.scheduler);
}

void thread_entry() {
    launch.thunk(launch.args);
    launch.threads[launch.current].state = State::Done;
    // returning resumes uc_link, the scheduler
}

void fault_handler(int, siginfo_t* info, void*) {
    if (!launch.in_kernel) {  // not ours: restore the default action and re-raise
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        return;
    }
    launch.fault_address = info->si_addr;
    siglongjmp(launch.fault_jump, 1);
}

std::string describe_block() {
    char buf[128];
    snprintf(buf, sizeof buf, "block (%u, %u, %u) of grid (%u, %u, %u), %d threads", blockIdx.x,
             blockIdx.y, blockIdx.z, gridDim.x, gridDim.y, gridDim.z, launch.nthreads);
    return buf;
}

// Release the threads of every warp whose 32 lanes all wait at the warp barrier; then, if
// nothing else can move, the whole block when every thread waits at __syncthreads.
// Returns false (with launch.error set) when the block can never make progress again.
bool release_barriers() {
    const int n = launch.nthreads;
    int done = 0, at_sync = 0, at_warp = 0;
    for (int t = 0; t < n; ++t) {
        const State s = launch.threads[t].state;
        done += s == State::Done;
        at_sync += s == State::AtSyncthreads;
        at_warp += s == State::AtWarpBarrier;
    }
    if (done == n) return true;
    bool released = false;
    for (int w = 0; w * 32 < n; ++w) {
        int waiting = 0;
        for (int lane = 0; lane < 32; ++lane) waiting += launch.threads[w * 32 + lane].state == State::AtWarpBarrier;
        if (waiting == 32) {
            for (int lane = 0; lane < 32; ++lane) launch.threads[w * 32 + lane].state = State::Runnable;
            released = true;
        }
    }
    if (released) return true;
    if (at_sync == n) {
        for (int t = 0; t < n; ++t) launch.threads[t].state = State::Runnable;
        return true;
    }
    format_error(launch.error,
                 "barrier divergence in kernel %s, %s: %d threads wait at __syncthreads(), %d at "
                 "a warp shuffle and %d have returned, so the barrier is never complete (on a "
                 "GPU: undefined behaviour, usually a hang)",
                 launch.name, describe_block().c_str(), at_sync, at_warp, done);
    return false;
}

// Run one block to completion (or to the first error).
bool run_block() {
    const int n = launch.nthreads;
    const size_t page = page_size();
    for (int t = 0; t < n; ++t) {
        Thread& th = launch.threads[t];
        getcontext(&th.ctx);
        th.ctx.uc_stack.ss_sp = stacks + (size_t)t * (kStackBytes + page) + page;
        th.ctx.uc_stack.ss_size = kStackBytes;
        th.ctx.uc_link = &launch.scheduler;
        makecontext(&th.ctx, thread_entry, 0);
        th.state = State::Runnable;
    }
    for (;;) {
        bool all_done = true;
        for (int t = 0; t < n; ++t) {
            if (launch.threads[t].state != State::Runnable) continue;
            launch.current = t;
            set_thread_index(t);
            swapcontext(&launch.scheduler, &launch.threads[t].ctx);
            if (!launch.error.empty()) return false;
        }
        for (int t = 0; t < n; ++t) all_done &= launch.threads[t].state == State::Done;
        if (all_done) return true;
        if (!release_barriers()) return false;
    }
}

bool allocate_stacks() {
    if (stacks) return true;
    const size_t page = page_size();
    const size_t total = (size_t)kMaxThreads * (kStackBytes + page);
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    stacks = (char*)p;
    for (int t = 0; t < kMaxThreads; ++t) mprotect(stacks + (size_t)t * (kStackBytes + page), page, PROT_NONE);
    signal_stack = (char*)mmap(nullptr, 64 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return signal_stack != MAP_FAILED;
}

}  // namespace

// -- called by the kernels through cuda_emu.h ----------------------------------------------
extern "C" void dlkit_emu_syncthreads(void) { park(State::AtSyncthreads); }

extern "C" void dlkit_emu_shfl(unsigned int mask, const void* in, void* out, int size, int delta) {
    const int tid = linear_thread_id();
    if (mask != 0xffffffffu) {
        format_error(launch.error, "kernel %s: __shfl_down_sync with mask 0x%08x; the emulator "
                     "(and dlkit's kernels) use full warps only", launch.name, mask);
        park(State::Done);
    }
    const int warp = tid / 32, lane = tid % 32;
    memcpy(launch.mailbox[warp][lane], in, (size_t)size);
    park(State::AtWarpBarrier);  // every lane has posted its value
    const int src = (delta >= 0 && lane + delta < 32) ? lane + delta : lane;
    memcpy(out, launch.mailbox[warp][src], (size_t)size);
    park(State::AtWarpBarrier);  // every lane has read before anyone posts again
}

void dlkit_emu_register(const char* name, KernelThunk thunk) { registry()[name] = thunk; }

// -- called from Python --------------------------------------------------------------------
namespace {
// [guard page][data pages][guard page]; returns the base (the lower guard page) or nullptr.
char* map_guarded(size_t nbytes, size_t* data_pages) {
    const size_t page = page_size();
    *data_pages = (nbytes + page - 1) / page;
    const size_t total = (*data_pages + 2) * page;
    char* base = (char*)mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return nullptr;
    mprotect(base, page, PROT_NONE);
    mprotect(base + (*data_pages + 1) * page, page, PROT_NONE);
    return base;
}
}  // namespace

extern "C" EXPORT void* dlkit_emu_alloc(size_t nbytes) {
    size_t data_pages;
    char* base = map_guarded(nbytes, &data_pages);
    if (!base) return nullptr;
    return base + (data_pages + 1) * page_size() - nbytes;  // ends right at the upper guard page
}

extern "C" EXPORT void* dlkit_emu_alloc_low(size_t nbytes) {
    size_t data_pages;
    char* base = map_guarded(nbytes, &data_pages);
    if (!base) return nullptr;
    return base + page_size();  // starts right after the lower guard page
}

extern "C" EXPORT void dlkit_emu_free(void* ptr, size_t nbytes) {
    // Either placement: the buffer starts in the first data page, right after the lower guard.
    const size_t page = page_size();
    const size_t data_pages = (nbytes + page - 1) / page;
    char* base = (char*)((uintptr_t)ptr / page * page) - page;
    munmap(base, (data_pages + 2) * page);
}

extern "C" EXPORT int dlkit_emu_has_kernel(const char* name) { return registry().count(name) ? 1 : 0; }

extern "C" EXPORT int dlkit_emu_launch(const char* name, const unsigned* grid, const unsigned* block,
                                void** args, char* err, size_t errlen, void** fault) {
    auto report = [&](int code, const std::string& msg) {
        snprintf(err, errlen, "%s", msg.c_str());
        return code;
    };
    auto it = registry().find(name);
    if (it == registry().end()) return report(1, std::string("no kernel named ") + name);
    const unsigned long long nthreads = (unsigned long long)block[0] * block[1] * block[2];
    if (nthreads == 0 || nthreads > kMaxThreads || grid[0] == 0 || grid[1] == 0 || grid[2] == 0 ||
        grid[1] > 65535 || grid[2] > 65535)
        return report(2, "invalid launch configuration (grid or block size)");
    if (!allocate_stacks()) return report(2, "cannot allocate the thread stacks");

    launch.thunk = it->second;
    launch.args = args;
    launch.name = it->first.c_str();
    launch.nthreads = (int)nthreads;
    launch.error.clear();
    launch.fault_address = nullptr;
    blockDim = {block[0], block[1], block[2]};
    gridDim = {grid[0], grid[1], grid[2]};

    stack_t alt = {};
    alt.ss_sp = signal_stack;
    alt.ss_size = 64 * 1024;
    stack_t old_alt;
    sigaltstack(&alt, &old_alt);
    struct sigaction sa = {}, old_segv, old_bus;
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);

    int code = 0;
    if (sigsetjmp(launch.fault_jump, 1) == 0) {
        launch.in_kernel = true;
        for (unsigned z = 0; z < grid[2] && code == 0; ++z)
            for (unsigned y = 0; y < grid[1] && code == 0; ++y)
                for (unsigned x = 0; x < grid[0] && code == 0; ++x) {
                    blockIdx = {x, y, z};
                    if (!run_block()) code = report(3, launch.error);
                }
    } else {
        *fault = launch.fault_address;
        char buf[256];
        snprintf(buf, sizeof buf, "invalid memory access at %p in kernel %s by thread (%u, %u, %u) "
                 "of block (%u, %u, %u)", launch.fault_address, launch.name, threadIdx.x,
                 threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z);
        code = report(4, buf);
    }
    launch.in_kernel = false;
    sigaction(SIGSEGV, &old_segv, nullptr);
    sigaction(SIGBUS, &old_bus, nullptr);
    sigaltstack(&old_alt, nullptr);
    return code;
}
