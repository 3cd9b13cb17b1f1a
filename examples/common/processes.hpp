#pragma once
// The processes of one tool run: just this one, or the ranks of an MPI job (mpirun -np K
// TOOL --mpi ...). MPI stays behind this interface, in processes.cpp (built with MPI when
// CMake finds it), so the tools compile the same with or without it.
#include <cstdint>

namespace salient::cli {

class Processes {
 public:
  // Whether this build can run under MPI (the --mpi option says so when it cannot).
  static bool mpi_available();
  // Refuses --mpi in a build without MPI, and a process that mpirun or srun started as one of
  // several without --mpi (every one of them would write the same folder). `how` completes
  // "add --mpi" (e.g. " (with --format hdf5)"; may be empty).
  static void check_launch(const char* tool, bool mpi, const char* how = "");
  // With `mpi`, joins the MPI job (MPI_Init); without, a run of one process.
  explicit Processes(bool mpi);
  ~Processes();  // MPI_Finalize
  Processes(const Processes&) = delete;
  Processes& operator=(const Processes&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }

  // The next task number of the run (0, 1, 2, ... over all processes together, each number to
  // one process): a counter on rank 0 that every rank increments atomically (MPI one-sided
  // fetch-and-add), so a rank with cheap tasks takes more of them.
  int64_t next_task();
  // Waits for every process; then rank 0's `value` is every process's.
  void barrier();
  int64_t broadcast(int64_t value);
  // The sum of every process's `value`, on every process.
  double sum(double value);
  // Ends every process of the job with exit code `code` (one failing rank must not leave the
  // others waiting at a barrier).
  [[noreturn]] void abort(int code);

 private:
  bool mpi_ = false;
  int rank_ = 0, size_ = 1;
  int64_t local_next_ = 0;
  void* window_ = nullptr;  // MPI_Win, when under MPI
};

}  // namespace salient::cli
