#pragma once
/// \file A feed-forward network on oneDNN as an optim::Objective: minibatches of a training
/// set, mean loss and gradient per batch, plus batched inference on any dataset.
#include "tern/io/dataset.hpp"
#include "tern/nn/layer.hpp"
#include "tern/nn/loss.hpp"
#include "tern/optim/objective.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tern::nn {

/// Accuracy and mean loss of a network on a dataset.
struct Evaluation {
    double loss = 0;
    double accuracy = 0;
    Index count = 0;
};

/// A network's layers as a directed acyclic graph, built in order: every layer reads earlier
/// nodes (or the network's input), so the order of addition is a topological order. A chain
/// of layers is the special case where each reads the one before. The last node added gives
/// the logits. Example: a residual block,
///
///     nn::Graph g({3, 32, 32});
///     int x = g.add(std::make_unique<nn::Conv2d>("conv1", 3, 16, 3, 1, 1, false));
///     x = g.add(std::make_unique<nn::BatchNorm>("bn1", 16, 1e-5f, 0.1f, true));
///     int y = g.add(std::make_unique<nn::Conv2d>("b1.conv1", 16, 16, 3, 1, 1, false));
///     y = g.add(std::make_unique<nn::BatchNorm>("b1.bn1", 16, 1e-5f, 0.1f, true));
///     y = g.add(std::make_unique<nn::Conv2d>("b1.conv2", 16, 16, 3, 1, 1, false));
///     y = g.add(std::make_unique<nn::BatchNorm>("b1.bn2", 16));
///     g.add(std::make_unique<nn::Add>("b1.add", true), {y, x});   // relu(F(x) + x)
///
/// (examples/custom_resnet.cpp builds and trains a whole one).
class Graph {
public:
    /// The network's input as a node id.
    static constexpr int kInput = -1;
    /// `input` = {C, H, W} of one image: the graph checks every layer's dims as it is added.
    explicit Graph(std::vector<Index> input);
    /// Appends `layer` reading `inputs` (ids of earlier nodes, or kInput), as many as
    /// layer->numInputs(); returns the new node's id. Throws std::runtime_error naming the
    /// layer for an id that is not earlier, a wrong input count, a repeated layer name, or
    /// dims that do not fit.
    int add(std::unique_ptr<Layer> layer, std::vector<int> inputs);
    /// Appends `layer` reading the last node added (the input for the first).
    int add(std::unique_ptr<Layer> layer);
    /// The last node added (kInput if none).
    int last() const { return static_cast<int>(layers_.size()) - 1; }
    /// Dims of node `id`'s output for one image ({1, C, H, W} or {1, F}); kInput: the input.
    const dnnl::memory::dims& dims(int id) const;
    const std::vector<Index>& input() const { return input_; }
    /// The layers added so far, in order.
    const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }

private:
    friend class Network;
    std::vector<Index> input_;
    std::vector<std::unique_ptr<Layer>> layers_;
    std::vector<std::vector<int>> inputs_;
    std::vector<dnnl::memory::dims> dims_;
    dnnl::memory::dims inputDims_;
};

class Network final : public optim::LogitObjective {
public:
    /// `input` = {C, H, W} of one image. A chain: each layer reads the one before. Declares
    /// every layer's blocks (the layers' order).
    Network(std::string name, std::vector<std::unique_ptr<Layer>> layers,
            std::vector<Index> input, int numClasses, Loss loss = Loss::SoftmaxCrossEntropy);
    /// A graph (residual networks): the last node gives the logits. Every node must be read
    /// by a later one, except the last (std::runtime_error naming a dead node).
    Network(std::string name, Graph graph, int numClasses, Loss loss = Loss::SoftmaxCrossEntropy);
    ~Network() override;
    Network(const Network&) = delete;
    Network& operator=(const Network&) = delete;

    const std::string& name() const { return name_; }
    /// Draws every layer's initial values from `seed`.
    void initialize(std::uint64_t seed);
    /// Binds the training set (kept by reference; it must outlive the network) and the batch
    /// size; training drops the last partial batch. `seed` drives augmentation and dropout.
    void setTrainData(const io::Dataset& train, Index batchSize, std::uint64_t seed);

    // optim::Objective
    ParameterSet& parameters() override { return params_; }
    Index numBatches() const override;
    void shuffle(std::mt19937_64& rng) override;
    double evaluateWithGradient(Index batch, optim::Pass pass = optim::Pass::Commit) override;
    double evaluate(Index batch) override;
    void saveState(StateWriter& out, const std::string& prefix) const override;
    void loadState(const StateReader& in, const std::string& prefix) override;

    // optim::LogitObjective (two training pass slots; slot 1 is compiled on first use)
    Index logitColumns() const override { return classes_; }
    Index logitRows() const override { return batch_; }
    const float* forwardLogits(Index batch, optim::Pass pass, int slot) override;
    double logitLoss(int slot, float* dLogits) override;
    void backwardFromLogits(int slot, const float* dLogits) override;

    /// Knowledge distillation from a frozen teacher (Hinton et al. 2015): the training loss
    /// becomes loss(student) + weight * D, with D = optim::softCrossEntropy(teacher, student, T)
    /// (T^2-scaled soft cross-entropy) and the teacher's logits from an inference-mode pass
    /// (BN running statistics, no dropout) over the same augmented batch. Every method sees it
    /// through evaluateWithGradient(), evaluate() and logitLoss(); test evaluation and
    /// trainMetrics()' accuracy stay the student's own. The teacher may be another model; it
    /// must take the same {C, H, W} images and give the same number of classes (else
    /// std::invalid_argument naming both). It is shared, never trained. nullptr removes it.
    void setTeacher(std::shared_ptr<Network> teacher, double weight, double temperature);
    /// The teacher (nullptr if none).
    const Network* teacher() const { return teacher_.get(); }
    /// Logits (count x classes) of `count` images laid out as the network's input (NCHW,
    /// normalized as the datasets are), in inference mode.
    std::vector<float> logits(const float* images, Index count);

    /// Training accuracy and mean loss over the Commit evaluations since the last reset.
    Evaluation trainMetrics() const;
    void resetTrainMetrics();

    /// Inference (BN running statistics, no dropout) over a whole dataset at the blocks'
    /// current `value`s, in batches of `batchSize` (the last one padded).
    Evaluation evaluateDataset(const io::Dataset& data, Index batchSize = 500);
    /// Re-estimates every batch-norm layer's running statistics at the blocks' current
    /// `value`s: the exact average of the batch statistics over the first `batches` training
    /// minibatches of the current order (training-mode forward passes, no backward, no change
    /// to the training metrics). For methods whose deployed weights differ from the weights
    /// they train (ADMM's G vs W, RPR's full projection vs the partly relaxed point), the
    /// running statistics gathered during training describe the wrong network.
    void recalibrateBatchNorm(Index batches);
    /// Arg-max class per image.
    std::vector<int> predict(const io::Dataset& data, Index batchSize = 500);
    /// Logits (count x numClasses, row-major) per image.
    std::vector<float> logits(const io::Dataset& data, Index batchSize = 500);

    /// The layers in graph order (a topological order; the order of a chain).
    const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
    /// The nodes layer i reads (indices into layers(); Graph::kInput for the input).
    const std::vector<int>& inputsOf(size_t i) const { return inputs_.at(i); }
    /// Every layer reads the one before it (no branches).
    bool isChain() const;
    /// The layers that read layer i's output.
    std::vector<int> consumersOf(size_t i) const;
    /// Input dims of layer i for one image (batch 1): those of its first input.
    dnnl::memory::dims inputDimsOf(size_t i) const;
    /// Output dims of layer i for one image (batch 1).
    const dnnl::memory::dims& outputDimsOf(size_t i) const { return dims_.at(i); }
    const std::vector<Index>& inputShape() const { return input_; }
    int numClasses() const { return classes_; }
    Loss loss() const { return loss_; }
    Index batchSize() const { return batch_; }
    Context& context() { return ctx_; }

    /// What compiling the training plan did (compiles it if needed; needs training data):
    /// the input-gradient buffers in bytes, `gradientOwn` if every layer kept its own,
    /// `gradientPooled` as placed by lifetime in one shared pool (LayerExec::gradientBuffers();
    /// equal when pooling is off), and the layers fused across executors ("bn2>add").
    struct PlanInfo {
        std::size_t gradientOwn = 0, gradientPooled = 0;
        std::vector<std::string> fused;
    };
    PlanInfo planInfo();
    /// Pool the input-gradient buffers by lifetime (default on). Applies to plans compiled
    /// afterwards: call before the first training step.
    void setGradientPooling(bool on) { poolGradients_ = on; }
    /// Fuse layers across executors where it saves passes over memory (default on): a batch
    /// norm without ReLU read only by an Add is applied inside the Add's pass. Applies to plans
    /// compiled afterwards.
    void setLayerFusion(bool on) { fuse_ = on; }

private:
    struct Plan;  // compiled executors for one (mode, batch size)
    std::unique_ptr<Plan> compile(Mode mode, Index batch);
    Plan& trainPlan(int slot = 0);
    Plan& inferPlan(Index batch);
    void checkImages(const io::Dataset& d, const char* where) const;
    void gather(Index batch);
    const float* forward(Plan& plan, optim::Pass pass);
    /// The training forward of `batch` in pass slot 0 or 1 (the batch gathered into slot 0's
    /// input, copied for slot 1; the step's seed); remembers and returns the logits.
    const float* forwardSlot(int slot, Index batch, optim::Pass pass);
    /// The backward pass of a training plan from its `diff`: every block's grad.
    void backward(Plan& plan);
    /// Own loss (and the teacher's distillation term) of the logits `out` of the gathered batch;
    /// overwrites diff (may be nullptr) with its gradient.
    double batchLoss(const float* out, float* diff, Index* correct);
    void record(double loss, Index correct);
    /// Places the plan's gradient buffers in one pool by lifetime (compile(), Mode::Train).
    void poolGradients(Plan& plan);
    /// Fuses executors across layers (compile(); setLayerFusion).
    void fuseLayers(Plan& plan);

    std::string name_;
    void validate();

    std::vector<std::unique_ptr<Layer>> layers_;
    std::vector<std::vector<int>> inputs_;   // per layer: the nodes it reads (-1 = input)
    std::vector<dnnl::memory::dims> dims_;   // per layer: output dims, batch 1
    std::vector<Index> input_;
    int classes_;
    Loss loss_;
    ParameterSet params_;
    Context ctx_;

    const io::Dataset* train_ = nullptr;
    Index batch_ = 0;
    std::uint64_t seed_ = 0;
    std::int64_t epoch_ = -1;             // shuffles seen; part of every step's seed
    std::vector<Index> order_;
    Index gathered_ = -1;                 // batch whose data is in the input buffer
    std::int64_t gatheredEpoch_ = -2;
    std::unique_ptr<Plan> train_plan_;
    std::unique_ptr<Plan> train_plan1_;   // LogitObjective's slot 1
    std::unique_ptr<Plan> infer_plan_;
    bool poolGradients_ = true;
    bool fuse_ = true;
    std::vector<std::int32_t> labels_;
    const float* slotOut_[2] = {nullptr, nullptr};  // logits of each slot's last forward
    // Frozen teacher: its logits of the gathered batch (cached per batch and epoch)
    std::shared_ptr<Network> teacher_;
    double teacherWeight_ = 0, teacherT_ = 1;
    std::vector<float> teacherLogits_;
    Index teacherBatch_ = -1;
    std::int64_t teacherEpoch_ = -2;
    double lossSum_ = 0;
    Index correct_ = 0, seen_ = 0, batches_ = 0;
};

}  // namespace tern::nn
