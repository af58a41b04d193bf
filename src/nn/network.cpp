// Network: a stack of layers compiled into oneDNN executors, as an optim::Objective.
#include "tern/nn/network.hpp"

#include "tern/core/error.hpp"
#include "tern/nn/layers.hpp"
#include "tern/optim/distill.hpp"

#include "layer_util.hpp"  // detail::AffineSource / AffineSink

#include <algorithm>
#include <cstdlib>
#include <numeric>

namespace tern::nn {

using dnnl::memory;
using optim::Pass;

namespace {

/// SplitMix64 finaliser: decorrelates (seed, epoch, batch) into one 64-bit seed.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

std::uint64_t stepSeed(std::uint64_t seed, std::int64_t epoch, Index batch) {
    return mix(mix(mix(seed) ^ static_cast<std::uint64_t>(epoch)) ^ static_cast<std::uint64_t>(batch));
}

}  // namespace

struct Network::Plan {
    Mode mode;
    Index batch;
    std::vector<float> input;
    memory inputMem;
    std::vector<std::unique_ptr<LayerExec>> execs;
    std::vector<float> diff;  // d loss / d logits (train plans)
    memory diffMem;           // over diff, plain (batch, classes)
    // Graphs: per node, the sum of its consumers' gradients (nodes read more than once)
    std::vector<memory> acc;
    // The pool of the executors' input-gradient buffers (Network::poolGradients)
    std::unique_ptr<void, void (*)(void*)> gradPool{nullptr, &std::free};
    std::size_t gradOwn = 0, gradPooled = 0;
    std::vector<std::string> fused;  // "producer>consumer" (Network::fuseLayers)
};

// ---------------------------------------------------------------------------------------------
// Graph

Graph::Graph(std::vector<Index> input) : input_(std::move(input)) {
    if (input_.size() != 3)
        fail("Graph()", TERN_MSG("input must be {C, H, W}, got " << input_.size() << " dims"));
    inputDims_ = {1, input_[0], input_[1], input_[2]};
}

const memory::dims& Graph::dims(int id) const {
    if (id == kInput) return inputDims_;
    if (id < 0 || id > last())
        fail("Graph::dims()", TERN_MSG("no node " << id << " (the graph has " << layers_.size()
                                                  << ")"));
    return dims_[static_cast<size_t>(id)];
}

int Graph::add(std::unique_ptr<Layer> layer) { return add(std::move(layer), {last()}); }

int Graph::add(std::unique_ptr<Layer> layer, std::vector<int> inputs) {
    if (!layer) fail("Graph::add()", "null layer");
    const std::string name = layer->name();
    for (const auto& l : layers_)
        if (l->name() == name) fail("Graph::add()", "a second layer named '" + name + "'");
    if (static_cast<int>(inputs.size()) != layer->numInputs())
        fail("Graph::add()", TERN_MSG(name << " reads " << layer->numInputs() << " input(s), given "
                                           << inputs.size()));
    std::vector<memory::dims> in;
    for (int id : inputs) {
        if (id < kInput || id > last())
            fail("Graph::add()", TERN_MSG(name << " reads node " << id
                                               << ", which is not an earlier node (0.."
                                               << last() << ") or the input (-1)"));
        in.push_back(dims(id));
    }
    memory::dims out;
    try {
        out = layer->outputDimsAll(in);
    } catch (const std::exception& e) {
        fail("Graph::add()", std::string(e.what()));
    }
    layers_.push_back(std::move(layer));
    inputs_.push_back(std::move(inputs));
    dims_.push_back(std::move(out));
    return last();
}

// ---------------------------------------------------------------------------------------------
// Network

namespace {

Graph chain(std::vector<std::unique_ptr<Layer>> layers, std::vector<Index> input) {
    Graph g(std::move(input));
    if (layers.empty()) fail("Network()", "no layers");
    for (auto& l : layers) g.add(std::move(l));
    return g;
}

}  // namespace

Network::Network(std::string name, std::vector<std::unique_ptr<Layer>> layers,
                 std::vector<Index> input, int numClasses, Loss loss)
    : Network(std::move(name), chain(std::move(layers), std::move(input)), numClasses, loss) {}

Network::Network(std::string name, Graph graph, int numClasses, Loss loss)
    : name_(std::move(name)), layers_(std::move(graph.layers_)), inputs_(std::move(graph.inputs_)),
      dims_(std::move(graph.dims_)), input_(std::move(graph.input_)), classes_(numClasses),
      loss_(loss) {
    validate();
    for (auto& l : layers_) l->declare(params_);
}

void Network::validate() {
    if (layers_.empty()) fail("Network()", "no layers");
    // Shapes were checked as the graph grew; the output must be the logits.
    const memory::dims& d = dims_.back();
    if (d != memory::dims{1, classes_})
        fail("Network()", TERN_MSG(name_ << ": the last layer gives " << d.size()
                                         << "-D output with " << d.back()
                                         << " features; expected " << classes_ << " classes"));
    for (size_t i = 0; i + 1 < layers_.size(); ++i)
        if (consumersOf(i).empty())
            fail("Network()", name_ + ": the output of layer '" + layers_[i]->name() +
                                  "' is read by no later layer (a dead branch)");
}

bool Network::isChain() const {
    for (size_t i = 0; i < inputs_.size(); ++i)
        if (inputs_[i] != std::vector<int>{static_cast<int>(i) - 1}) return false;
    return true;
}

std::vector<int> Network::consumersOf(size_t i) const {
    std::vector<int> c;
    for (size_t j = i + 1; j < inputs_.size(); ++j)
        for (int k : inputs_[j])
            if (k == static_cast<int>(i)) c.push_back(static_cast<int>(j));
    return c;
}

Network::~Network() = default;

void Network::initialize(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (auto& l : layers_) l->initialize(rng);
}

void Network::checkImages(const io::Dataset& d, const char* where) const {
    if (d.channels != input_[0] || d.height != input_[1] || d.width != input_[2])
        fail(where, TERN_MSG("dataset '" << d.name << "' has images " << d.channels << "x"
                                         << d.height << "x" << d.width << ", the network expects "
                                         << input_[0] << "x" << input_[1] << "x" << input_[2]));
}

void Network::setTrainData(const io::Dataset& train, Index batchSize, std::uint64_t seed) {
    checkImages(train, "Network::setTrainData()");
    requirePositive(static_cast<double>(batchSize), "Network::setTrainData()", "batchSize");
    if (train.count < batchSize)
        fail("Network::setTrainData()", TERN_MSG("dataset '" << train.name << "' has "
                                                            << train.count << " images, fewer than "
                                                            << "one batch of " << batchSize));
    train_ = &train;
    seed_ = seed;
    epoch_ = -1;
    order_.resize(train.count);
    std::iota(order_.begin(), order_.end(), Index{0});
    gathered_ = -1;
    if (batch_ != batchSize) {
        train_plan_.reset();
        train_plan1_.reset();
        slotOut_[0] = slotOut_[1] = nullptr;
    }
    batch_ = batchSize;
}

Index Network::numBatches() const { return train_ ? train_->count / batch_ : 0; }

void Network::shuffle(std::mt19937_64& rng) {
    std::shuffle(order_.begin(), order_.end(), rng);
    ++epoch_;
    gathered_ = -1;
}

std::unique_ptr<Network::Plan> Network::compile(Mode mode, Index batch) {
    auto p = std::make_unique<Plan>();
    p->mode = mode;
    p->batch = batch;
    p->input.assign(static_cast<size_t>(batch * input_[0] * input_[1] * input_[2]), 0.0f);
    memory::desc md({batch, input_[0], input_[1], input_[2]}, memory::data_type::f32,
                    memory::format_tag::nchw);
    p->inputMem = memory(md, ctx_.engine, p->input.data());
    for (size_t i = 0; i < layers_.size(); ++i) {
        std::vector<memory::desc> srcs;
        for (int j : inputs_[i]) srcs.push_back(j < 0 ? p->inputMem.get_desc() : p->execs[j]->dstDesc());
        p->execs.push_back(srcs.size() == 1 && layers_[i]->numInputs() == 1
                               ? layers_[i]->compile(ctx_, srcs[0], mode)
                               : layers_[i]->compileAll(ctx_, srcs, mode));
    }
    md = p->execs.back()->dstDesc();
    p->acc.resize(layers_.size());
    if (mode == Mode::Train)
        for (size_t i = 0; i < layers_.size(); ++i)
            if (consumersOf(i).size() > 1) p->acc[i] = memory(p->execs[i]->dstDesc(), ctx_.engine);
    if (md != memory::desc({batch, classes_}, memory::data_type::f32, memory::format_tag::nc))
        fail("Network::compile()", "the last layer's output is not a plain (N, classes) tensor");
    if (fuse_) fuseLayers(*p);
    if (mode == Mode::Train) poolGradients(*p);
    return p;
}

void Network::poolGradients(Plan& plan) {
    // Backward runs the nodes in reverse: node i at step n-1-i. The gradients node i's
    // backward writes are read by the backward of the nodes it reads, the last of them at step
    // n-1-min(inputs). Two buffers whose step ranges overlap need their own bytes; the rest
    // share. Placement: largest first, each at the lowest offset clear of every placed buffer
    // it overlaps in time (a greedy interval packing; ResNet-20 at batch 128: 66 buffers).
    struct Item {
        GradientBuffer buf;
        std::size_t bytes = 0, offset = 0;
        size_t first = 0, last = 0;
    };
    const size_t n = plan.execs.size();
    std::vector<Item> items;
    for (size_t i = 0; i < n; ++i) {
        int lowest = static_cast<int>(i);
        for (int j : inputs_[i])
            if (j >= 0) lowest = std::min(lowest, j);
        if (lowest == static_cast<int>(i)) continue;  // reads only the input: no input gradient
        for (const GradientBuffer& b : plan.execs[i]->gradientBuffers()) {
            if (!b.mem || !*b.mem) continue;
            Item it;
            it.buf = b;
            it.bytes = (b.mem->get_desc().get_size() + 63) / 64 * 64;  // 64-byte aligned
            it.first = n - 1 - i;
            it.last = n - 1 - static_cast<size_t>(lowest);
            plan.gradOwn += it.bytes;
            items.push_back(std::move(it));
        }
    }
    if (!poolGradients_ || items.empty()) {
        plan.gradPooled = plan.gradOwn;
        return;
    }
    std::vector<size_t> order(items.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return items[a].bytes > items[b].bytes; });
    std::vector<size_t> placed;
    std::size_t total = 0;
    for (size_t k : order) {
        Item& it = items[k];
        // the placed buffers alive at the same time, by offset
        std::vector<std::pair<std::size_t, std::size_t>> busy;
        for (size_t q : placed)
            if (items[q].first <= it.last && it.first <= items[q].last)
                busy.emplace_back(items[q].offset, items[q].offset + items[q].bytes);
        std::sort(busy.begin(), busy.end());
        std::size_t at = 0;
        for (const auto& [lo, hi] : busy) {
            if (at + it.bytes <= lo) break;
            at = std::max(at, hi);
        }
        it.offset = at;
        total = std::max(total, at + it.bytes);
        placed.push_back(k);
    }
    const std::size_t page = 4096;
    void* pool = std::aligned_alloc(page, (total + page - 1) / page * page);
    if (!pool) fail("Network::compile()", TERN_MSG("out of memory: a gradient pool of " << total << " bytes"));
    plan.gradPool.reset(pool);
    plan.gradPooled = total;
    for (Item& it : items) {
        void* p = static_cast<char*>(pool) + it.offset;
        it.buf.mem->set_data_handle(p);  // frees the executor's own buffer
        for (memory* v : it.buf.views)
            if (v && *v) v->set_data_handle(p);
    }
}

void Network::fuseLayers(Plan& plan) {
    // A batch norm without ReLU read only by an Add: the Add applies its a z + b in its own
    // pass (ResNets' bn2 -> add: one pass over z for the moments and one for the sum, where
    // oneDNN's batch norm and the Add make four).
    for (size_t i = 0; i < plan.execs.size(); ++i) {
        const auto& in = inputs_[i];
        if (in.empty() || in[0] < 0) continue;
        const auto j = static_cast<size_t>(in[0]);
        if (consumersOf(j).size() != 1) continue;
        auto* sink = dynamic_cast<detail::AffineSink*>(plan.execs[i].get());
        auto* source = dynamic_cast<detail::AffineSource*>(plan.execs[j].get());
        if (sink && source && source->canDeferAffine() && sink->absorbAffine(0, source) &&
            source->deferAffine())
            plan.fused.push_back(layers_[j]->name() + ">" + layers_[i]->name());
    }
}

Network::PlanInfo Network::planInfo() {
    const Plan& p = trainPlan();
    return {p.gradOwn, p.gradPooled, p.fused};
}

Network::Plan& Network::trainPlan(int slot) {
    if (!train_) fail("Network::evaluateWithGradient()", "no training data bound (setTrainData)");
    if (slot != 0 && slot != 1)
        fail("Network::forwardLogits()", TERN_MSG("slot must be 0 or 1 (got " << slot << ")"));
    std::unique_ptr<Plan>& p = slot == 0 ? train_plan_ : train_plan1_;
    if (!p) {
        p = compile(Mode::Train, batch_);
        p->diff.assign(static_cast<size_t>(batch_ * classes_), 0.0f);
        p->diffMem = memory({{batch_, classes_}, memory::data_type::f32, memory::format_tag::nc},
                            ctx_.engine, p->diff.data());
        labels_.resize(static_cast<size_t>(batch_), 0);
    }
    return *p;
}

Network::Plan& Network::inferPlan(Index batch) {
    if (!infer_plan_ || infer_plan_->batch != batch) {
        infer_plan_.reset();  // free the old executors before building the new ones
        infer_plan_ = compile(Mode::Infer, batch);
    }
    return *infer_plan_;
}

void Network::gather(Index batch) {
    if (batch < 0 || batch >= numBatches())
        fail("Network::evaluateWithGradient()",
             TERN_MSG("batch " << batch << " out of range [0, " << numBatches() << ")"));
    if (gathered_ == batch && gatheredEpoch_ == epoch_) return;
    Plan& plan = trainPlan(0);
    std::vector<Index> idx(order_.begin() + batch * batch_, order_.begin() + (batch + 1) * batch_);
    std::mt19937_64 rng(stepSeed(seed_ ^ 0xA5A5A5A5ull, epoch_, batch));
    io::gatherBatch(*train_, idx, plan.input.data(), labels_.data(), &rng);
    gathered_ = batch;
    gatheredEpoch_ = epoch_;
}

const float* Network::forward(Plan& plan, Pass pass) {
    const size_t n = plan.execs.size();
    std::vector<const memory*> out(n, nullptr);
    std::vector<const memory*> srcs;
    for (size_t i = 0; i < n; ++i) {
        const auto& in = inputs_[i];
        if (in.size() == 1) {
            out[i] = &plan.execs[i]->forward(in[0] < 0 ? plan.inputMem : *out[in[0]], pass);
        } else {
            srcs.clear();
            for (int j : in) srcs.push_back(j < 0 ? &plan.inputMem : out[j]);
            out[i] = &plan.execs[i]->forwardAll(srcs, pass);
        }
    }
    ctx_.stream.wait();
    return static_cast<const float*>(out.back()->get_data_handle());
}

double Network::batchLoss(const float* out, float* diff, Index* correct) {
    double loss = lossAndGradient(loss_, out, labels_.data(), batch_, classes_, diff, correct);
    if (teacher_) {
        if (teacherBatch_ != gathered_ || teacherEpoch_ != gatheredEpoch_) {
            teacherLogits_ = teacher_->logits(train_plan_->input.data(), batch_);
            teacherBatch_ = gathered_;
            teacherEpoch_ = gatheredEpoch_;
        }
        loss += teacherWeight_ * optim::softCrossEntropy(teacherLogits_.data(), out, batch_,
                                                         classes_, teacherT_, teacherWeight_,
                                                         diff, nullptr);
    }
    return loss;
}

void Network::record(double loss, Index correct) {
    lossSum_ += loss;
    correct_ += correct;
    seen_ += batch_;
    ++batches_;
}

const float* Network::forwardSlot(int slot, Index batch, Pass pass) {
    Plan& plan = trainPlan(slot);
    gather(batch);  // into slot 0's input
    if (slot == 1) std::copy(train_plan_->input.begin(), train_plan_->input.end(), plan.input.begin());
    ctx_.stepSeed = stepSeed(seed_, epoch_, batch);
    slotOut_[slot] = forward(plan, pass);
    return slotOut_[slot];
}

void Network::backward(Plan& plan) {
    // Reverse topological order. A node read once passes its consumer's gradient on as is; a
    // node read more than once sums its consumers' gradients (all in its own output desc:
    // every executor returns diffSrc in the desc it was compiled for), in one pass when its
    // own turn comes (all its consumers have run by then; their gradient
    // buffers stay valid until their next backward).
    const size_t n = plan.execs.size();
    std::vector<std::vector<const memory*>> parts(n);
    parts[n - 1].push_back(&plan.diffMem);
    for (size_t i = n; i-- > 0;) {
        const auto& in = inputs_[i];
        bool need = false;
        for (int j : in) need = need || j >= 0;
        // one gradient passes on as is; several are summed (in the executor's own pass when
        // it can: LayerExec::backwardSum)
        const memory& d0 = parts[i].size() > 1
                               ? plan.execs[i]->backwardSum(parts[i], plan.acc[i], need)
                               : plan.execs[i]->backward(*parts[i].front(), need);
        if (!need) continue;
        ctx_.stream.wait();
        for (size_t k = 0; k < in.size(); ++k)
            if (in[k] >= 0)
                parts[static_cast<size_t>(in[k])].push_back(
                    k == 0 ? &d0 : &plan.execs[i]->diffSrc(static_cast<int>(k)));
    }
    ctx_.stream.wait();
}

double Network::evaluateWithGradient(Index batch, Pass pass) {
    const float* out = forwardSlot(0, batch, pass);
    Plan& plan = *train_plan_;
    Index correct = 0;
    const double loss = batchLoss(out, plan.diff.data(), &correct);
    backward(plan);
    if (pass == Pass::Commit) record(loss, correct);
    return loss;
}

double Network::evaluate(Index batch) {
    return batchLoss(forwardSlot(0, batch, Pass::Probe), nullptr, nullptr);
}

const float* Network::forwardLogits(Index batch, Pass pass, int slot) {
    const float* out = forwardSlot(slot, batch, pass);
    if (pass == Pass::Commit) {
        Index correct = 0;
        const double loss = batchLoss(out, nullptr, &correct);  // before `correct` is read
        record(loss, correct);
    }
    return out;
}

double Network::logitLoss(int slot, float* dLogits) {
    Plan& plan = trainPlan(slot);
    if (!slotOut_[slot] || gathered_ < 0)
        fail("Network::logitLoss()", TERN_MSG("slot " << slot << " has no forward pass yet"));
    if (!dLogits) return batchLoss(slotOut_[slot], nullptr, nullptr);
    const double loss = batchLoss(slotOut_[slot], plan.diff.data(), nullptr);
    for (size_t i = 0; i < plan.diff.size(); ++i) dLogits[i] += plan.diff[i];
    return loss;
}

void Network::backwardFromLogits(int slot, const float* dLogits) {
    Plan& plan = trainPlan(slot);
    if (!slotOut_[slot])
        fail("Network::backwardFromLogits()", TERN_MSG("slot " << slot << " has no forward pass yet"));
    std::copy(dLogits, dLogits + plan.diff.size(), plan.diff.begin());
    backward(plan);
}

void Network::setTeacher(std::shared_ptr<Network> teacher, double weight, double temperature) {
    if (teacher) {
        if (teacher.get() == this) fail("Network::setTeacher()", "a network cannot be its own teacher");
        if (teacher->input_ != input_ || teacher->classes_ != classes_)
            fail("Network::setTeacher()",
                 TERN_MSG("the teacher " << teacher->name_ << " takes " << teacher->input_[0] << "x"
                          << teacher->input_[1] << "x" << teacher->input_[2] << " images and gives "
                          << teacher->classes_ << " classes; the student " << name_ << " takes "
                          << input_[0] << "x" << input_[1] << "x" << input_[2] << " and gives "
                          << classes_));
        requireNonNegative(weight, "Network::setTeacher()", "weight");
        requirePositive(temperature, "Network::setTeacher()", "temperature");
    }
    teacher_ = std::move(teacher);
    teacherWeight_ = weight;
    teacherT_ = temperature;
    teacherBatch_ = -1;
    teacherEpoch_ = -2;
}

std::vector<float> Network::logits(const float* images, Index count) {
    requirePositive(static_cast<double>(count), "Network::logits()", "count");
    Plan& plan = inferPlan(count);
    std::copy(images, images + plan.input.size(), plan.input.begin());
    const float* s = forward(plan, Pass::Probe);
    return std::vector<float>(s, s + count * classes_);
}

void Network::recalibrateBatchNorm(Index batches) {
    std::vector<BatchNorm*> bns;
    for (auto& l : layers_)
        if (auto* bn = dynamic_cast<BatchNorm*>(l.get())) bns.push_back(bn);
    batches = std::min(batches, numBatches());
    if (bns.empty() || batches <= 0) return;
    std::vector<float> momenta;
    for (BatchNorm* bn : bns) momenta.push_back(bn->momentum());
    Plan& plan = trainPlan();
    // running_k = running_{k-1} + (batch_k - running_{k-1}) / k: the plain average
    for (Index b = 0; b < batches; ++b) {
        for (BatchNorm* bn : bns) bn->setMomentum(1.0f / static_cast<float>(b + 1));
        gather(b);
        ctx_.stepSeed = stepSeed(seed_ ^ 0xB17Cull, epoch_, b);
        forward(plan, Pass::Commit);
    }
    for (size_t i = 0; i < bns.size(); ++i) bns[i]->setMomentum(momenta[i]);
}

Evaluation Network::trainMetrics() const {
    Evaluation e;
    e.count = seen_;
    e.loss = batches_ ? lossSum_ / static_cast<double>(batches_) : 0.0;
    e.accuracy = seen_ ? static_cast<double>(correct_) / static_cast<double>(seen_) : 0.0;
    return e;
}

void Network::resetTrainMetrics() {
    lossSum_ = 0;
    correct_ = seen_ = batches_ = 0;
}

std::vector<float> Network::logits(const io::Dataset& data, Index batchSize) {
    checkImages(data, "Network::logits()");
    requirePositive(static_cast<double>(batchSize), "Network::logits()", "batchSize");
    const Index b = std::min(batchSize, std::max<Index>(data.count, 1));
    Plan& plan = inferPlan(b);
    const Index img = data.imageSize();
    std::vector<float> out(static_cast<size_t>(data.count * classes_));
    for (Index start = 0; start < data.count; start += b) {
        const Index n = std::min(b, data.count - start);
        io::readImages(data, start, n, plan.input.data());
        std::fill(plan.input.begin() + n * img, plan.input.end(), 0.0f);
        const float* s = forward(plan, Pass::Probe);
        std::copy(s, s + n * classes_, out.begin() + start * classes_);
    }
    return out;
}

Evaluation Network::evaluateDataset(const io::Dataset& data, Index batchSize) {
    const std::vector<float> s = logits(data, batchSize);
    Evaluation e;
    e.count = data.count;
    Index correct = 0;
    if (data.count > 0)
        e.loss = lossAndGradient(loss_, s.data(), data.labels.data(), data.count, classes_,
                                 nullptr, &correct);
    e.accuracy = data.count ? static_cast<double>(correct) / static_cast<double>(data.count) : 0;
    return e;
}

std::vector<int> Network::predict(const io::Dataset& data, Index batchSize) {
    return argmaxRows(logits(data, batchSize), data.count, classes_);
}

memory::dims Network::inputDimsOf(size_t i) const {
    const int j = i < inputs_.size() ? inputs_[i].at(0) : static_cast<int>(layers_.size()) - 1;
    if (j < 0) return {1, input_[0], input_[1], input_[2]};
    return dims_.at(static_cast<size_t>(j));
}

void Network::saveState(StateWriter& out, const std::string& prefix) const {
    for (const auto& l : layers_) l->saveState(out, prefix);
    out.writeInts(prefix + "order", std::vector<std::int64_t>(order_.begin(), order_.end()));
    out.attr(prefix + "order", "epoch", static_cast<std::int64_t>(epoch_));
    // Running train metrics, so that a run resumed mid-epoch reports the same epoch numbers.
    out.attr(prefix + "order", "loss_sum", lossSum_);
    out.attr(prefix + "order", "correct", static_cast<std::int64_t>(correct_));
    out.attr(prefix + "order", "seen", static_cast<std::int64_t>(seen_));
    out.attr(prefix + "order", "batches", static_cast<std::int64_t>(batches_));
}

void Network::loadState(const StateReader& in, const std::string& prefix) {
    for (auto& l : layers_) l->loadState(in, prefix);
    if (in.has(prefix + "order")) {
        const auto o = in.readInts(prefix + "order");
        if (static_cast<Index>(o.size()) != static_cast<Index>(order_.size()))
            fail("Network::loadState()", TERN_MSG("stored shuffle order has " << o.size()
                                                  << " entries, the training set " << order_.size()));
        order_.assign(o.begin(), o.end());
        epoch_ = in.attrInt(prefix + "order", "epoch");
        lossSum_ = in.attrDouble(prefix + "order", "loss_sum");
        correct_ = in.attrInt(prefix + "order", "correct");
        seen_ = in.attrInt(prefix + "order", "seen");
        batches_ = in.attrInt(prefix + "order", "batches");
        gathered_ = -1;
    }
}

}  // namespace tern::nn
