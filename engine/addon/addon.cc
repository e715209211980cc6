// SPDX-License-Identifier: MIT
//
// The native glue between TypeScript and the C engine. It only converts types:
// every decision (validation messages, defaults, state machine) lives in C or
// in TypeScript (src/native.ts, src/engine/engine.ts).
//
// Memory: Node 20's N-API cannot reach a SharedArrayBuffer's bytes, so the
// addon goes through V8 (SharedArrayBuffer::Data / GetBackingStore). An engine
// keeps the region's std::shared_ptr<BackingStore> for as long as its threads
// may touch the bytes. All state is per environment (Napi::Addon instance
// data), so the addon loads in the main thread and in every worker; an env
// cleanup hook stops engines (joins their threads) and drops the
// BackingStores while the isolate still exists (a static holder that outlives
// the isolate crashes at exit).
#include <napi.h>
#include <v8.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <vector>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

// region.h is C11; its static asserts use the C spelling.
#define _Static_assert static_assert
extern "C" {
#include "reflector/announce.h"
#include "reflector/mcast.h"
#include "reflector/engine.h"
#include "reflector/region.h"
}
#undef _Static_assert

// Weak, so that a build without engine/src/engine.c (the engine grows in
// parallel with the addon) still loads: regions, rings and futexes work and
// engineCreate() says the engine is missing.
#pragma weak rf_engine_config_defaults
#pragma weak rf_engine_create
#pragma weak rf_engine_start
#pragma weak rf_engine_stop
#pragma weak rf_engine_destroy
#pragma weak rf_engine_running
#pragma weak rf_engine_doorbell_fd

namespace {

// ------------------------------------------------------------- helpers --

// napi_value is a v8::Local<v8::Value> in Node's implementation (node_api.cc
// converts the two the same way).
v8::Local<v8::Value> ToV8(napi_value v) {
  v8::Local<v8::Value> local;
  static_assert(sizeof(local) == sizeof(v), "napi_value is a v8::Local");
  memcpy(static_cast<void*>(&local), &v, sizeof(v));
  return local;
}

napi_value FromV8(v8::Local<v8::Value> local) {
  napi_value v;
  memcpy(&v, static_cast<void*>(&local), sizeof(v));
  return v;
}

struct Mem {
  uint8_t* data;
  size_t len;
};

v8::Local<v8::SharedArrayBuffer> SabOf(const Napi::Value& v, const char* what) {
  v8::Local<v8::Value> local = ToV8(v);
  if (local.IsEmpty() || !local->IsSharedArrayBuffer())
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a SharedArrayBuffer");
  return local.As<v8::SharedArrayBuffer>();
}

Mem MemOf(const Napi::Value& v, const char* what) {
  v8::Local<v8::SharedArrayBuffer> sab = SabOf(v, what);
  return Mem{static_cast<uint8_t*>(sab->Data()), sab->ByteLength()};
}

uint32_t U32Arg(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), what + ": expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d)
    throw Napi::RangeError::New(v.Env(), what + ": expected an integer in 0..4294967295");
  return static_cast<uint32_t>(d);
}

uint32_t U32Key(const Napi::Object& o, const char* key, uint32_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  return U32Arg(v, key);
}

// A count of nanoseconds: a double cast to uint64_t outside 0..2^64 (NaN,
// negative, too large) is undefined behaviour, so refuse those first.
uint64_t U64NsKey(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return 0;
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(key) + ": expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  // 2^64 is exact as a double; every double below it fits
  if (!(d >= 0 && d < 18446744073709551616.0))
    throw Napi::RangeError::New(v.Env(), std::string(key) + ": expected a number of ns in 0..2^64");
  return static_cast<uint64_t>(d);
}

rf_region_params ParamsOf(const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "region params: expected an object");
  Napi::Object o = v.As<Napi::Object>();
  rf_region_params p;
  p.lanes = U32Arg(o.Get("lanes"), "lanes");
  p.slots_per_lane = U32Arg(o.Get("slotsPerLane"), "slotsPerLane");
  p.slot_size = U32Arg(o.Get("slotSize"), "slotSize");
  p.submit_entries = U32Arg(o.Get("submitEntries"), "submitEntries");
  p.dests_per_lane = U32Arg(o.Get("destsPerLane"), "destsPerLane");
  p.policy_entries = U32Arg(o.Get("policyEntries"), "policyEntries");
  p.event_entries = U32Arg(o.Get("eventEntries"), "eventEntries");
  p.max_streams = U32Arg(o.Get("maxStreams"), "maxStreams");
  p.max_outputs = U32Arg(o.Get("maxOutputs"), "maxOutputs");
  return p;
}

Napi::Error ErrorWithErrno(Napi::Env env, const std::string& msg, int err) {
  Napi::Error e = Napi::Error::New(env, msg);
  if (err) e.Value().Set("errno", Napi::Number::New(env, err));
  return e;
}

// A region allocated by the addon: page-aligned anonymous memory (a
// SharedArrayBuffer from V8's allocator is only 16-byte aligned, and the
// region wants cache-line aligned rings). Freed when the last BackingStore
// reference goes, from whichever thread drops it.
void UnmapRegion(void* data, size_t len, void*) { munmap(data, len); }

// ----------------------------------------------------------- doorbells --

// ring() writes an engine thread's doorbell eventfd. The number in the
// region's header is for information only: TypeScript can write any integer
// there, and the addon would then write 8 bytes to whatever file that names.
// So the addon keeps its own dup() of every doorbell of an engine, taken from
// the engine itself (rf_engine_doorbell_fd) when it is created and closed
// when it is destroyed, keyed by region address: a write always reaches one
// of the engine's eventfds (while it is stopped too, which is harmless).
// Process-wide because workers ring engines that another thread's addon
// instance created; never destroyed, since a worker may still ring while the
// process exits.
struct DoorbellSet {
  std::array<int, RF_MAX_THREADS> fds;
  bool running = false;  // ring() says false while the engine is stopped
};

struct Doorbells {
  std::mutex mu;
  std::map<const void*, DoorbellSet> fds;
};

Doorbells& TheDoorbells() {
  static Doorbells* d = new Doorbells();
  return *d;
}

// Dup the engine's own doorbells (never the header's numbers).
void RegisterDoorbells(const void* region, const rf_engine* e) {
  DoorbellSet set;
  for (uint32_t t = 0; t < RF_MAX_THREADS; t++) {
    int fd = rf_engine_doorbell_fd(e, t);
    set.fds[t] = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  }
  Doorbells& d = TheDoorbells();
  std::lock_guard<std::mutex> lock(d.mu);
  auto it = d.fds.find(region);
  if (it != d.fds.end())
    for (int fd : it->second.fds)
      if (fd >= 0) close(fd);
  d.fds[region] = set;
}

void DoorbellsRunning(const void* region, bool running) {
  Doorbells& d = TheDoorbells();
  std::lock_guard<std::mutex> lock(d.mu);
  auto it = d.fds.find(region);
  if (it != d.fds.end()) it->second.running = running;
}

void UnregisterDoorbells(const void* region) {
  Doorbells& d = TheDoorbells();
  std::lock_guard<std::mutex> lock(d.mu);
  auto it = d.fds.find(region);
  if (it == d.fds.end()) return;
  for (int fd : it->second.fds)
    if (fd >= 0) close(fd);
  d.fds.erase(it);
}

// ------------------------------------------------------------- engines --

// One engine and what it needs alive. `mu` serialises create/start/stop/
// destroy, which run on libuv worker threads, against the env cleanup hook.
struct EngineSlot {
  std::mutex mu;
  rf_engine* engine = nullptr;
  std::shared_ptr<v8::BackingStore> store;  // the region the engine's threads touch
  std::string ifname, netns, bpf_object;    // cfg points into these
  rf_engine_config cfg;
};

// Runs `work` on a libuv worker thread; the promise resolves with `done`'s
// value or rejects with the message `work` returned. The JS thread never
// blocks on an engine's threads.
class Job : public Napi::AsyncWorker {
 public:
  using Work = std::function<std::string(int* err)>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  using Fail = std::function<void()>;

  static Napi::Promise Run(Napi::Env env, Work work, Done done, Fail fail = nullptr) {
    Job* j = new Job(env, std::move(work), std::move(done), std::move(fail));
    Napi::Promise p = j->deferred_.Promise();
    j->Queue();
    return p;
  }

 private:
  Job(Napi::Env env, Work work, Done done, Fail fail)
      : Napi::AsyncWorker(env, "reflector:engine"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        done_(std::move(done)),
        fail_(std::move(fail)) {}

  void Execute() override {
    msg_ = work_(&err_);
    if (!msg_.empty()) SetError(msg_);
  }
  void OnOK() override { deferred_.Resolve(done_(Env())); }
  void OnError(const Napi::Error&) override {
    if (fail_) fail_();
    deferred_.Reject(ErrorWithErrno(Env(), msg_, err_).Value());
  }

  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  Fail fail_;
  std::string msg_;
  int err_ = 0;
};

// Stop and free one engine; called with slot->mu held.
void DestroyLocked(EngineSlot* s) {
  if (s->engine) {
    rf_engine_destroy(s->engine);  // stops (joins) first when running
    s->engine = nullptr;
    UnregisterDoorbells(s->store->Data());
  }
  s->store.reset();
}

// ------------------------------------------------------- interface info --

struct IfInfo {
  uint8_t mac[6];
  int mtu;
  int ifindex;
  std::string error;
};

void QueryInterface(const std::string& ifname, IfInfo* out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    out->error = std::string("interface ") + ifname + ": socket: " + strerror(errno);
    return;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname.c_str());
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    out->error = std::string("interface ") + ifname + " not found: " + strerror(errno);
    close(fd);
    return;
  }
  out->ifindex = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
    out->error = std::string("interface ") + ifname + ": SIOCGIFMTU: " + strerror(errno);
    close(fd);
    return;
  }
  out->mtu = ifr.ifr_mtu;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    out->error = std::string("interface ") + ifname + ": SIOCGIFHWADDR: " + strerror(errno);
    close(fd);
    return;
  }
  memcpy(out->mac, ifr.ifr_hwaddr.sa_data, 6);
  close(fd);
}

// Run fn in network namespace `netns` (a path) on a short-lived thread, so
// the calling thread's namespace never changes; "" = the current one.
// Returns an error message, "" on success.
std::string InNetns(const std::string& netns, const std::function<void()>& fn) {
  if (netns.empty()) {
    fn();
    return "";
  }
  std::string err;
  std::thread th([&]() {
    int fd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = "netns " + netns + ": " + strerror(errno);
      return;
    }
    if (setns(fd, CLONE_NEWNET) < 0) {
      err = "netns " + netns + ": setns: " + strerror(errno);
      close(fd);
      return;
    }
    close(fd);
    fn();
  });
  th.join();
  return err;
}

// One UDP datagram to addr:port from a socket opened inside the namespace:
// the kernel resolves the neighbour (ARP / ND) to send it. No shell, no
// child process. ifindex scopes an IPv6 link-local address.
std::string SendProbe(int family, const std::string& addr, uint16_t port, uint32_t ifindex) {
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof(ss));
  if (family == 4) {
    struct sockaddr_in* a = reinterpret_cast<struct sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, addr.c_str(), &a->sin_addr) != 1) return "not an IPv4 address: " + addr;
    len = sizeof(*a);
  } else {
    struct sockaddr_in6* a = reinterpret_cast<struct sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_scope_id = ifindex;
    if (inet_pton(AF_INET6, addr.c_str(), &a->sin6_addr) != 1) return "not an IPv6 address: " + addr;
    len = sizeof(*a);
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return std::string("probe socket: ") + strerror(errno);
  static const char payload[] = "reflector neighbour probe";
  std::string err;
  if (sendto(fd, payload, sizeof(payload) - 1, 0, reinterpret_cast<struct sockaddr*>(&ss), len) < 0) {
    err = std::string("probe sendto: ") + strerror(errno);
  }
  close(fd);
  return err;
}

// ---------------------------------------------------------------- addon --

class Reflector : public Napi::Addon<Reflector> {
 public:
  Reflector(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
        InstanceMethod("regionFields", &Reflector::RegionFields),
        InstanceMethod("counterNames", &Reflector::CounterNames),
        InstanceMethod("laneFaultNames", &Reflector::LaneFaultNames),
        InstanceMethod("regionLayout", &Reflector::RegionLayout),
        InstanceMethod("regionAlloc", &Reflector::RegionAlloc),
        InstanceMethod("regionInit", &Reflector::RegionInit),
        InstanceMethod("regionCheck", &Reflector::RegionCheck),
        InstanceMethod("ring", &Reflector::Ring),
        InstanceMethod("futexWait", &Reflector::FutexWait),
        InstanceMethod("futexWake", &Reflector::FutexWake),
        InstanceMethod("engineAvailable", &Reflector::EngineAvailable),
        InstanceMethod("engineCreate", &Reflector::EngineCreate),
        InstanceMethod("engineStart", &Reflector::EngineStart),
        InstanceMethod("engineStop", &Reflector::EngineStop),
        InstanceMethod("engineDestroy", &Reflector::EngineDestroy),
        InstanceMethod("engineRunning", &Reflector::EngineRunning),
        InstanceMethod("engineRelayTier", &Reflector::EngineRelayTier),
        InstanceMethod("engineKernelCounters", &Reflector::EngineKernelCounters),
        InstanceMethod("engineKernelOutput", &Reflector::EngineKernelOutput),
        InstanceMethod("engineKernelTestRun", &Reflector::EngineKernelTestRun),
        InstanceMethod("interfaceInfo", &Reflector::InterfaceInfo),
        InstanceMethod("udpProbe", &Reflector::UdpProbe),
        InstanceMethod("announceAddress", &Reflector::AnnounceAddress),
        InstanceMethod("mcastJoin", &Reflector::McastJoin),
        InstanceMethod("mcastLeave", &Reflector::McastLeave),
        InstanceMethod("sdNotify", &Reflector::SdNotify),
    });
    // Runs before the instance data is finalized (hooks run in reverse
    // order of registration and N-API registered its own first).
    env.AddCleanupHook([this]() { Cleanup(); });
  }

  ~Reflector() { Cleanup(); }

 private:
  // Stop every engine (joining its threads) and drop every BackingStore
  // while the isolate is still alive.
  void Cleanup() {
    for (auto& kv : engines_) {
      std::lock_guard<std::mutex> lock(kv.second->mu);
      DestroyLocked(kv.second.get());
    }
    engines_.clear();
  }

  Napi::Value RegionFields(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    for (const rf_field* f = rf_region_fields; f->name; f++)
      o.Set(f->name, Napi::Number::New(env, f->value));
    return o;
  }

  static Napi::Value Names(Napi::Env env, const char* const* names, uint32_t n) {
    Napi::Array a = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; i++) a.Set(i, Napi::String::New(env, names[i] ? names[i] : ""));
    return a;
  }

  Napi::Value CounterNames(const Napi::CallbackInfo& info) {
    return Names(info.Env(), rf_counter_names, RF_C_COUNT_USED);
  }

  Napi::Value LaneFaultNames(const Napi::CallbackInfo& info) {
    return Names(info.Env(), rf_lane_fault_names, RF_LANE_FAULT_COUNT_USED);
  }

  // regionLayout(params): rf_region_layout(), throws its message.
  Napi::Value RegionLayout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    rf_region_params p = ParamsOf(info[0]);
    struct rf_region_layout l;
    char err[256];
    if (rf_region_layout(&p, &l, err, sizeof(err))) throw Napi::Error::New(env, err);
    Napi::Object o = Napi::Object::New(env);
    o.Set("size", l.size);
    o.Set("headerSize", l.header_size);
    o.Set("countersOff", l.counters_off);
    o.Set("lanesOff", l.lanes_off);
    o.Set("laneStride", l.lane_stride);
    o.Set("freeRel", l.free_rel);
    o.Set("policyOff", l.policy_off);
    o.Set("eventOff", l.event_off);
    o.Set("destOff", l.dest_off);
    o.Set("streamCountersOff", l.stream_counters_off);
    o.Set("captureOff", l.capture_off);
    o.Set("outputCountersOff", l.output_counters_off);
    o.Set("laneCountersOff", l.lane_counters_off);
    o.Set("poolOff", l.pool_off);
    return o;
  }

  // regionAlloc(bytes): a page-aligned, zeroed SharedArrayBuffer.
  Napi::Value RegionAlloc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t len = U32Arg(info[0], "bytes");
    if (len == 0 || len > RF_MAX_REGION)
      throw Napi::RangeError::New(env, "bytes: expected 1.." + std::to_string(RF_MAX_REGION));
    void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
      throw ErrorWithErrno(env, std::string("region: mmap of ") + std::to_string(len) +
                                    " bytes failed: " + strerror(errno), errno);
    v8::Isolate* isolate = v8::Isolate::GetCurrent();
    std::unique_ptr<v8::BackingStore> bs =
        v8::SharedArrayBuffer::NewBackingStore(mem, len, UnmapRegion, nullptr);
    v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(bs));
    return Napi::Value(env, FromV8(sab));
  }

  // regionInit(sab, params): rf_region_init(), throws its message.
  Napi::Value RegionInit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Mem m = MemOf(info[0], "regionInit");
    rf_region_params p = ParamsOf(info[1]);
    char err[256];
    if (rf_region_init(m.data, m.len, &p, err, sizeof(err))) throw Napi::Error::New(env, err);
    return env.Undefined();
  }

  // regionCheck(sab): rf_region_check(), throws its message.
  Napi::Value RegionCheck(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Mem m = MemOf(info[0], "regionCheck");
    char err[256];
    if (rf_region_check(m.data, m.len, err, sizeof(err))) throw Napi::Error::New(env, err);
    return env.Undefined();
  }

  // ring(sab, thread): write the thread's doorbell eventfd. The caller has
  // stored its ring index and then read doorbell.sleeping != 0 (Atomics,
  // sequentially consistent): the Dekker pair with the engine's sleep path.
  // Returns false when no engine runs on the region (nobody to wake).
  Napi::Value Ring(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Mem m = MemOf(info[0], "ring");
    uint32_t t = U32Arg(info[1], "thread");
    if (t >= RF_MAX_THREADS)
      throw Napi::RangeError::New(env, "thread: " + std::to_string(t) + " is not in 0.." +
                                           std::to_string(RF_MAX_THREADS - 1));
    if (m.len < sizeof(rf_region_hdr))
      throw Napi::RangeError::New(env, "ring: buffer is smaller than the region header");
    rf_doorbell* db = &reinterpret_cast<rf_region_hdr*>(m.data)->doorbell[t];
    Doorbells& d = TheDoorbells();
    std::lock_guard<std::mutex> lock(d.mu);
    // registered when the engine was created, before its threads could
    // sleep: no wake is lost, and no number is read from the region
    auto it = d.fds.find(m.data);
    if (it == d.fds.end()) return Napi::Boolean::New(env, false);
    int fd = it->second.fds[t];
    if (fd < 0) return Napi::Boolean::New(env, false);
    __atomic_fetch_add(&db->rings, 1, __ATOMIC_RELAXED);
    uint64_t one = 1;
    // written even while the engine is (re)starting or stopped: a wake is
    // never lost, and a spare one only makes a thread look at its rings
    ssize_t n = write(fd, &one, sizeof(one));
    // EAGAIN: the counter is saturated, the engine is awake anyway.
    return Napi::Boolean::New(env, it->second.running && n == sizeof(one));
  }

  uint32_t* FutexWord(const Napi::CallbackInfo& info, const char* what) {
    Napi::Env env = info.Env();
    Mem m = MemOf(info[0], what);
    if (!info[1].IsNumber())
      throw Napi::TypeError::New(env, std::string(what) + ": byteOffset: expected a number");
    double off = info[1].As<Napi::Number>().DoubleValue();
    // the range first: casting a double outside uint64_t's is undefined
    if (!(off >= 0) || off + 4 > static_cast<double>(m.len) || std::floor(off) != off ||
        static_cast<uint64_t>(off) % 4 != 0)
      throw Napi::RangeError::New(
          env, std::string(what) + ": byteOffset " + info[1].ToString().Utf8Value() +
                   " is not a 4-byte aligned offset in 0.." + std::to_string(m.len - 4));
    return reinterpret_cast<uint32_t*>(m.data + static_cast<size_t>(off));
  }

  // futexWait(sab, byteOffset, expected, timeoutMs): FUTEX_WAIT_PRIVATE on a
  // word of the region (the engine, same process, wakes it with
  // FUTEX_WAKE_PRIVATE). Blocks the calling thread: workers only.
  Napi::Value FutexWait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t* word = FutexWord(info, "futexWait");
    if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "futexWait: expected: expected a number");
    uint32_t expected = info[2].As<Napi::Number>().Uint32Value();
    if (!info[3].IsNumber()) throw Napi::TypeError::New(env, "futexWait: timeoutMs: expected a number");
    double ms = info[3].As<Napi::Number>().DoubleValue();
    // (a finite ms past ~2^62 would overflow time_t in the cast below)
    if (!(ms >= 0) || (std::isfinite(ms) && ms > 1e15))
      throw Napi::RangeError::New(env, "futexWait: timeoutMs: expected >= 0 and at most 1e15 (Infinity = no limit)");
    struct timespec ts, *tsp = nullptr;
    if (std::isfinite(ms)) {
      ts.tv_sec = static_cast<time_t>(ms / 1000);
      ts.tv_nsec = static_cast<long>((ms - static_cast<double>(ts.tv_sec) * 1000) * 1e6);
      if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
      tsp = &ts;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, tsp, nullptr, 0);
    const char* res = "ok";
    if (r < 0) {
      if (errno == EAGAIN)
        res = "not-equal";
      else if (errno == ETIMEDOUT)
        res = "timed-out";
      // EINTR: a spurious wake-up; callers re-check their condition anyway.
    }
    return Napi::String::New(env, res);
  }

  Napi::Value FutexWake(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t* word = FutexWord(info, "futexWake");
    long r = syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
    return Napi::Number::New(env, r < 0 ? 0 : static_cast<double>(r));
  }

  Napi::Value EngineAvailable(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), &rf_engine_create != nullptr);
  }

  std::shared_ptr<EngineSlot> SlotOf(const Napi::CallbackInfo& info) {
    uint32_t id = U32Arg(info[0], "engine");
    auto it = engines_.find(id);
    if (it == engines_.end())
      throw Napi::Error::New(info.Env(), "engine " + std::to_string(id) + " does not exist (destroyed)");
    return it->second;
  }

  // engineCreate(sab, cfg): Promise<id>. Opens the port on a worker thread
  // (it may enter a network namespace and bind sockets).
  Napi::Value EngineCreate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (&rf_engine_create == nullptr)
      throw Napi::Error::New(env, "engine: this build has no engine (engine/src/engine.c missing)");
    v8::Local<v8::SharedArrayBuffer> sab = SabOf(info[0], "engineCreate");
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "engineCreate: cfg: expected an object");
    Napi::Object o = info[1].As<Napi::Object>();

    auto s = std::make_shared<EngineSlot>();
    memset(&s->cfg, 0, sizeof(s->cfg));
    std::string backend = o.Get("backend").ToString().Utf8Value();
    if (backend == "afpacket")
      s->cfg.backend = RF_BACKEND_AFPACKET;
    else if (backend == "afxdp")
      s->cfg.backend = RF_BACKEND_AFXDP;
    else if (backend == "null")
      s->cfg.backend = RF_BACKEND_NULL;
    else
      throw Napi::Error::New(env, "backend: \"" + backend + "\" is not one of afpacket, afxdp, null");
    s->ifname = o.Get("ifname").ToString().Utf8Value();
    Napi::Value ns = o.Get("netns");
    if (!ns.IsUndefined() && !ns.IsNull()) s->netns = ns.ToString().Utf8Value();
    s->cfg.ifname = s->ifname.c_str();
    s->cfg.netns = s->netns.empty() ? nullptr : s->netns.c_str();
    Napi::Value bo = o.Get("bpfObject");
    if (bo.IsString()) s->bpf_object = bo.As<Napi::String>().Utf8Value();
    s->cfg.bpf_object = s->bpf_object.empty() ? nullptr : s->bpf_object.c_str();
    s->cfg.relay_tier = U32Key(o, "relayTier", 0);
    s->cfg.kernel_orphan_s = U32Key(o, "kernelOrphanS", 0);
    s->cfg.tx_frames = U32Key(o, "txFrames", 0);
    s->cfg.rx_block_size = U32Key(o, "rxBlockSize", 0);
    s->cfg.rx_blocks = U32Key(o, "rxBlocks", 0);
    s->cfg.burst = U32Key(o, "burst", 0);
    s->cfg.mtu = U32Key(o, "mtu", 0);
    s->cfg.late_drop_ns = U64NsKey(o, "lateDropNs");
    s->cfg.spin_ns = U64NsKey(o, "spinNs");
    s->cfg.tx_window_ns = U64NsKey(o, "txWindowNs");
    Napi::Value cpu = o.Get("cpuTx");
    s->cfg.cpu_tx = cpu.IsNumber() ? cpu.As<Napi::Number>().Int32Value() : -1;
    cpu = o.Get("cpuRx");
    s->cfg.cpu_rx = cpu.IsNumber() ? cpu.As<Napi::Number>().Int32Value() : -1;
    Napi::Value prio = o.Get("txPriority");
    s->cfg.tx_priority = prio.IsNumber() ? prio.As<Napi::Number>().Int32Value() : 0;
    rf_engine_config_defaults(&s->cfg);
    s->store = sab->GetBackingStore();

    uint32_t id = next_id_++;
    engines_[id] = s;
    std::map<uint32_t, std::shared_ptr<EngineSlot>>* engines = &engines_;
    return Job::Run(
        env,
        [s](int* e) -> std::string {
          std::lock_guard<std::mutex> lock(s->mu);
          if (!s->store) return "engine: destroyed before it was created";
          char err[256] = "";
          int r = rf_engine_create(&s->engine, s->store->Data(), s->store->ByteLength(), &s->cfg,
                                   err, sizeof(err));
          if (r) {
            s->engine = nullptr;
            s->store.reset();
            *e = -r;
            return err[0] ? err : std::string("engine: create failed: ") + strerror(-r);
          }
          RegisterDoorbells(s->store->Data(), s->engine);
          return "";
        },
        [id](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, id); },
        // runs on the JS thread: a failed create leaves nothing behind
        [id, engines]() { engines->erase(id); });
  }

  Napi::Value EngineStart(const Napi::CallbackInfo& info) {
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    return Job::Run(
        info.Env(),
        [s](int* e) -> std::string {
          std::lock_guard<std::mutex> lock(s->mu);
          if (!s->engine) return "engine: not created (or destroyed)";
          char err[256] = "";
          int r = rf_engine_start(s->engine, err, sizeof(err));
          if (r) {
            *e = -r;
            return err[0] ? err : std::string("engine: start failed: ") + strerror(-r);
          }
          DoorbellsRunning(s->store->Data(), true);
          return "";
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  Napi::Value EngineStop(const Napi::CallbackInfo& info) {
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    return Job::Run(
        info.Env(),
        [s](int*) -> std::string {
          std::lock_guard<std::mutex> lock(s->mu);
          if (s->engine) {
            rf_engine_stop(s->engine);
            DoorbellsRunning(s->store->Data(), false);
          }
          return "";
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  // engineDestroy(id): frees a stopped engine (joins first if it still
  // runs: call engineStop and await it before, to keep the JS thread free).
  Napi::Value EngineDestroy(const Napi::CallbackInfo& info) {
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    engines_.erase(info[0].As<Napi::Number>().Uint32Value());
    std::lock_guard<std::mutex> lock(s->mu);
    DestroyLocked(s.get());
    return info.Env().Undefined();
  }

  Napi::Value EngineRunning(const Napi::CallbackInfo& info) {
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    std::lock_guard<std::mutex> lock(s->mu);
    return Napi::Boolean::New(info.Env(), s->engine && rf_engine_running(s->engine));
  }

  // engineRelayTier(id): { tier: "kernel" | "user" | "none", why }
  Napi::Value EngineRelayTier(const Napi::CallbackInfo& info) {
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    std::lock_guard<std::mutex> lock(s->mu);
    Napi::Object r = Napi::Object::New(info.Env());
    const char* why = "";
    r.Set("tier", s->engine ? rf_engine_relay_tier(s->engine, &why) : "none");
    r.Set("why", s->engine ? why : "engine not created");
    return r;
  }

  // engineKernelCounters(id): BigUint64Array(64) of the tc program's
  // counters by engine counter index, summed over CPUs (zeros without one)
  Napi::Value EngineKernelCounters(const Napi::CallbackInfo& info) {
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    std::lock_guard<std::mutex> lock(s->mu);
    uint64_t v[64] = {0};
    if (s->engine) rf_engine_kernel_counters(s->engine, v, 64);
    Napi::Env env = info.Env();
    auto ab = Napi::ArrayBuffer::New(env, sizeof(v));
    memcpy(ab.Data(), v, sizeof(v));
    return Napi::BigUint64Array::New(env, 64, ab, 0);
  }

  // engineKernelOutput(id, slot): BigUint64Array(4) packets, bytes, drops, limited
  Napi::Value EngineKernelOutput(const Napi::CallbackInfo& info) {
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    uint32_t slot = U32Arg(info[1], "slot");
    std::lock_guard<std::mutex> lock(s->mu);
    struct rf_output_counters c;
    memset(&c, 0, sizeof(c));
    if (s->engine) rf_engine_kernel_output(s->engine, slot, &c);
    Napi::Env env = info.Env();
    auto ab = Napi::ArrayBuffer::New(env, sizeof(c));
    memcpy(ab.Data(), &c, sizeof(c));
    return Napi::BigUint64Array::New(env, 4, ab, 0);
  }

  // engineKernelTestRun(id, testOut, frame: Uint8Array): { ret, frame }
  // (BPF_PROG_TEST_RUN; tests only)
  Napi::Value EngineKernelTestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<EngineSlot> s = SlotOf(info);
    uint32_t k = U32Arg(info[1], "testOut");
    if (!info[2].IsTypedArray()) throw Napi::TypeError::New(env, "engineKernelTestRun: frame: expected a Uint8Array");
    Napi::Uint8Array f = info[2].As<Napi::Uint8Array>();
    std::vector<uint8_t> out(f.ByteLength() + 256);
    uint32_t out_len = static_cast<uint32_t>(out.size());
    std::lock_guard<std::mutex> lock(s->mu);
    if (!s->engine) throw Napi::Error::New(env, "engine not created");
    int r = rf_engine_kernel_test_run(s->engine, k, f.Data(), static_cast<uint32_t>(f.ByteLength()), out.data(), &out_len);
    if (r < 0) throw Napi::Error::New(env, std::string("BPF_PROG_TEST_RUN: ") + strerror(-r));
    Napi::Object o = Napi::Object::New(env);
    o.Set("ret", r);
    o.Set("frame", Napi::Buffer<uint8_t>::Copy(env, out.data(), out_len));
    return o;
  }

  // interfaceInfo(ifname, netnsPath?): { mac, mtu, ifindex } by ioctl,
  // inside the namespace when given (a short-lived thread enters it, so the
  // JS thread's namespace never changes).
  Napi::Value InterfaceInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "interface: expected a string");
    std::string ifname = info[0].As<Napi::String>().Utf8Value();
    std::string netns;
    if (info.Length() > 1 && info[1].IsString()) netns = info[1].As<Napi::String>().Utf8Value();
    IfInfo r;
    memset(r.mac, 0, sizeof(r.mac));
    r.mtu = 0;
    r.ifindex = 0;
    std::string ns_err = InNetns(netns, [&]() { QueryInterface(ifname, &r); });
    if (!ns_err.empty()) r.error = ns_err;
    if (!r.error.empty()) throw Napi::Error::New(env, r.error);
    char mac[18];
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", r.mac[0], r.mac[1], r.mac[2],
             r.mac[3], r.mac[4], r.mac[5]);
    Napi::Object o = Napi::Object::New(env);
    o.Set("mac", mac);
    o.Set("mtu", r.mtu);
    o.Set("ifindex", r.ifindex);
    return o;
  }

  // udpProbe(family, addr, port, ifindex, netnsPath?): "" or what failed.
  // A failed send is not an error for the caller: the neighbour table says
  // whether the probe worked.
  // sdNotify(socket, message): one datagram to the service manager's
  // NOTIFY_SOCKET (sd_notify(3)): a path, or "@name" for an abstract socket.
  // Node has no AF_UNIX datagram sockets. Returns "" or what failed; the
  // caller logs it (a manager that went away is no reason to stop serving).
  Napi::Value SdNotify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) throw Napi::TypeError::New(env, "sdNotify(socket, message)");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    std::string msg = info[1].As<Napi::String>().Utf8Value();
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (path.empty() || (path[0] != '/' && path[0] != '@')) return Napi::String::New(env, "NOTIFY_SOCKET \"" + path + "\" is neither an absolute path nor @abstract");
    if (path.size() >= sizeof sa.sun_path) return Napi::String::New(env, "NOTIFY_SOCKET is longer than " + std::to_string(sizeof sa.sun_path - 1) + " bytes");
    memcpy(sa.sun_path, path.data(), path.size());
    // an abstract name starts with a NUL and its length is exact, not NUL-terminated
    if (path[0] == '@') sa.sun_path[0] = '\0';
    socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Napi::String::New(env, std::string("socket(AF_UNIX, SOCK_DGRAM): ") + strerror(errno));
    ssize_t n = sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&sa), len);
    int err = errno;
    close(fd);
    if (n < 0) return Napi::String::New(env, "sendto " + path + ": " + strerror(err));
    if (static_cast<size_t>(n) != msg.size()) return Napi::String::New(env, "sendto " + path + ": short datagram");
    return Napi::String::New(env, "");
  }

  Napi::Value UdpProbe(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber() || !info[3].IsNumber()) {
      throw Napi::TypeError::New(env, "udpProbe(family, addr, port, ifindex, netns?)");
    }
    int family = info[0].As<Napi::Number>().Int32Value();
    if (family != 4 && family != 6) throw Napi::TypeError::New(env, "udpProbe: family is 4 or 6");
    std::string addr = info[1].As<Napi::String>().Utf8Value();
    uint32_t port = info[2].As<Napi::Number>().Uint32Value();
    uint32_t ifindex = info[3].As<Napi::Number>().Uint32Value();
    if (port == 0 || port > 65535) throw Napi::TypeError::New(env, "udpProbe: port is 1..65535");
    std::string netns;
    if (info.Length() > 4 && info[4].IsString()) netns = info[4].As<Napi::String>().Utf8Value();
    std::string err;
    std::string ns_err = InNetns(netns, [&]() { err = SendProbe(family, addr, static_cast<uint16_t>(port), ifindex); });
    return Napi::String::New(env, ns_err.empty() ? err : ns_err);
  }

  // announceAddress(ifname, netns, family, addr: Uint8Array(16), count):
  // gratuitous ARP / unsolicited neighbour advertisement (announce.h)
  Napi::Value AnnounceAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "interface: expected a string");
    std::string ifname = info[0].As<Napi::String>().Utf8Value();
    std::string netns = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    int family = static_cast<int>(U32Arg(info[2], "family"));
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().ByteLength() != 16)
      throw Napi::TypeError::New(env, "address: expected a Uint8Array of 16 bytes");
    Napi::Uint8Array a = info[3].As<Napi::Uint8Array>();
    int count = static_cast<int>(U32Arg(info[4], "count"));
    char err[512] = "";
    if (rf_announce(netns.c_str(), ifname.c_str(), family, a.Data(), count, err, sizeof(err)) < 0)
      throw Napi::Error::New(env, err);
    return env.Undefined();
  }

  // mcastJoin(ifname, netns, family, group: Uint8Array(16), sources: Uint8Array(16)[]):
  // the fd holding the membership (mcast.h); throws with .errno when refused
  Napi::Value McastJoin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "interface: expected a string");
    std::string ifname = info[0].As<Napi::String>().Utf8Value();
    std::string netns = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    int family = static_cast<int>(U32Arg(info[2], "family"));
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().ByteLength() != 16)
      throw Napi::TypeError::New(env, "group: expected a Uint8Array of 16 bytes");
    Napi::Uint8Array g = info[3].As<Napi::Uint8Array>();
    if (!info[4].IsArray()) throw Napi::TypeError::New(env, "sources: expected an array");
    Napi::Array arr = info[4].As<Napi::Array>();
    if (arr.Length() > RF_MCAST_MAX_SOURCES) throw Napi::TypeError::New(env, "sources: too many");
    uint8_t src[RF_MCAST_MAX_SOURCES][16];
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().ByteLength() != 16)
        throw Napi::TypeError::New(env, "sources[i]: expected a Uint8Array of 16 bytes");
      memcpy(src[i], v.As<Napi::Uint8Array>().Data(), 16);
    }
    char err[512] = "";
    int fd = rf_mcast_join(netns.c_str(), ifname.c_str(), family, g.Data(), src, arr.Length(), err, sizeof(err));
    if (fd < 0) {
      Napi::Error e = Napi::Error::New(env, err);
      e.Set("errno", Napi::Number::New(env, -fd));
      throw e;
    }
    return Napi::Number::New(env, fd);
  }

  // mcastLeave(fd): close the membership socket (the kernel leaves the group)
  Napi::Value McastLeave(const Napi::CallbackInfo& info) {
    int fd = static_cast<int>(U32Arg(info[0], "fd"));
    close(fd);
    return info.Env().Undefined();
  }

  std::map<uint32_t, std::shared_ptr<EngineSlot>> engines_;
  uint32_t next_id_ = 1;
};

}  // namespace

NODE_API_ADDON(Reflector)
