// Processes (processes.hpp) with MPI when SALIENT_HAVE_MPI is defined, else one process.
#include "common/processes.hpp"

#include <cstdlib>

#include "salient/core/error.hpp"

#ifdef SALIENT_HAVE_MPI
#include <mpi.h>
#endif

namespace salient::cli {

void Processes::check_launch(const char* tool, bool mpi, const char* how) {
  if (mpi && !mpi_available())
    raise(error_kind::bad_input, "--mpi: this ", tool, " was built without MPI (install libopenmpi-dev and rebuild)");
  for (const char* size : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* value = std::getenv(size); !mpi && value && std::atoi(value) > 1)
      raise(error_kind::bad_input, "this is one of ", value, " processes of an MPI job (", size, "): add --mpi", how,
            ", or run one process");
}

#ifdef SALIENT_HAVE_MPI
namespace {
MPI_Win& window_of(void* window) { return *static_cast<MPI_Win*>(window); }
}  // namespace

bool Processes::mpi_available() { return true; }

Processes::Processes(bool mpi) : mpi_(mpi) {
  if (!mpi_) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // The task counter: one int64 in rank 0's window (allocated by MPI, so that ranks on one
  // machine share it as memory and the fetch-and-add needs no help from rank 0).
  auto* window = new MPI_Win;
  int64_t* counter = nullptr;
  MPI_Win_allocate(rank_ == 0 ? sizeof(int64_t) : 0, sizeof(int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &counter, window);
  window_ = window;
  if (rank_ == 0) {
    MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, *window);
    *counter = 0;
    MPI_Win_unlock(0, *window);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

Processes::~Processes() {
  if (!mpi_) return;
  MPI_Win_free(&window_of(window_));
  delete static_cast<MPI_Win*>(window_);
  MPI_Finalize();
}

int64_t Processes::next_task() {
  if (!mpi_) return local_next_++;
  const int64_t one = 1;
  int64_t task = 0;
  MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, window_of(window_));
  MPI_Fetch_and_op(&one, &task, MPI_INT64_T, 0, 0, MPI_SUM, window_of(window_));
  MPI_Win_unlock(0, window_of(window_));
  return task;
}

void Processes::barrier() {
  if (mpi_) MPI_Barrier(MPI_COMM_WORLD);
}

int64_t Processes::broadcast(int64_t value) {
  if (mpi_) MPI_Bcast(&value, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  return value;
}

double Processes::sum(double value) {
  double total = value;
  if (mpi_) MPI_Allreduce(&value, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

void Processes::abort(int code) {
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}
#else
bool Processes::mpi_available() { return false; }

Processes::Processes(bool mpi) : mpi_(mpi) {
  if (mpi_) raise(error_kind::bad_input, "--mpi: this build has no MPI (install libopenmpi-dev and rebuild)");
}
Processes::~Processes() = default;
int64_t Processes::next_task() { return local_next_++; }
void Processes::barrier() {}
int64_t Processes::broadcast(int64_t value) { return value; }
double Processes::sum(double value) { return value; }
void Processes::abort(int code) { std::exit(code); }
#endif

}  // namespace salient::cli
