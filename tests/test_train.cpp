#define BOOST_TEST_MODULE train
#include <boost/test/unit_test.hpp>

#include "tern/io/checkpoint.hpp"
#include "tern/nn/models.hpp"
#include "tern/run/recipe.hpp"
#include "tern/run/train.hpp"
#include "testing/helpers.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>

using namespace tern;
using namespace tern::run;
using tern::testing::messageContains;
namespace fs = std::filesystem;

namespace {

const std::string& dataDir() { return testing::bandsDataDir(); }

TrainConfig tinyConfig(const std::string& method) {
    TrainConfig c;
    c.dataset = "mnist";
    c.dataDir = dataDir();
    c.model = "tiny";
    c.epochs = 4;
    c.batchSize = 20;
    c.lr = 0.05;
    c.threads = 1;
    c.method = method;
    c.opt.admm.rho = 1e-3;
    c.opt.admm.rhoGrowth = 1.5;
    c.evalBatch = 64;
    return c;
}

std::vector<std::string> readLines(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(f, l);) lines.push_back(l);
    return lines;
}

/// Drops the timing columns (seconds, images_per_s) of a metrics.csv row.
std::string withoutTimes(const std::string& row) {
    std::vector<std::string> cols;
    std::stringstream ss(row);
    for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
    std::string out;
    for (size_t i = 0; i < cols.size(); ++i)
        if (i != 6 && i != 7) out += cols[i] + ",";
    return out;
}

/// The metrics.csv rows of two runs are equal but for their timing columns (a resumed run
/// against the straight one); `what` names the comparison in failures.
void requireSameMetrics(const std::string& dirA, const std::string& dirB, const std::string& what) {
    const auto a = readLines(dirA + "/metrics.csv");
    const auto b = readLines(dirB + "/metrics.csv");
    BOOST_TEST_REQUIRE(a.size() == b.size(), what);
    for (size_t i = 0; i < a.size(); ++i)
        BOOST_TEST(withoutTimes(a[i]) == withoutTimes(b[i]), what << " row " << i);
}

const std::vector<std::string> kMethods{"fp",  "bc",   "bwn", "twn", "ttq",
                                        "gtc", "admm", "pgd", "rpr", "inc"};

/// v is 0 or +-2^k.
bool zeroOrPowerOfTwo(float v) {
    int e = 0;
    return v == 0.0f || std::abs(std::frexp(v, &e)) == 0.5f;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_method_learns_and_deploys_into_its_set) {
    for (const std::string& m : kMethods) {
        TrainConfig c = tinyConfig(m);
        c.outDir = testing::tempDir("train-" + m);
        const TrainResult r = train(c, nullptr);
        BOOST_TEST_MESSAGE(m << ": final test accuracy " << r.finalTestAcc << ", nonzeros "
                             << r.cost.nonzeroWeights);
        BOOST_TEST(r.status == "completed");
        BOOST_TEST(r.finalTestAcc >= 0.8, m << " reached only " << r.finalTestAcc);  // chance: 1/3
        BOOST_TEST(readLines(c.outDir + "/metrics.csv").size() == 5u);
        BOOST_TEST(fs::exists(c.outDir + "/summary.json"));
        BOOST_TEST(fs::exists(c.outDir + "/checkpoint.h5"));
        if (m == "fp") continue;
        Index allowed = (m == "bc" || m == "bwn") ? 2 : 3;
        if (m == "gtc") {
            // 0 and +-2^k over the layer's exponent range: at most 2^bits + 1 values (fc1 is the
            // tiny model's only quantized layer, so the mean bits are its bits)
            const double bits = r.history.back().bits;
            BOOST_TEST(bits >= 1.0);
            BOOST_TEST(bits <= 9.0);
            allowed = (Index{1} << static_cast<int>(bits)) + 1;
        }
        BOOST_TEST(!r.layers.empty());
        for (const auto& q : r.layers)
            BOOST_TEST(q.maxDistinctPerGroup <= allowed, m << " " << q.block << " has "
                                                           << q.maxDistinctPerGroup << " values");
        // The deployed weights in the checkpoint are in the set too.
        io::CheckpointReader ck(c.outDir + "/checkpoint.h5");
        const Vector w = ck.read("params/fc1.weights", ck.shape("params/fc1.weights"));
        std::set<float> values(w.data(), w.data() + w.size());
        BOOST_TEST(static_cast<Index>(values.size()) <= allowed);
        if (m == "gtc")
            BOOST_TEST(std::all_of(values.begin(), values.end(), zeroOrPowerOfTwo));
    }
}

BOOST_AUTO_TEST_CASE(gtc_with_the_bit_penalty_learns_checkpoints_and_resumes) {
    // GTC as the paper trains it, without distillation: Adam, theta trained, lambda2 > 0
    auto config = [](const std::string& tag) {
        TrainConfig c = tinyConfig("gtc");
        c.setOptimizer("adam");
        c.lr = 0.01;
        c.opt.ste.bitPenalty = 0.01;
        c.outDir = testing::tempDir(tag);
        return c;
    };
    TrainConfig c = config("gtc-straight");
    const TrainResult r = train(c, nullptr);
    BOOST_TEST(r.status == "completed");
    BOOST_TEST(r.finalTestAcc >= 0.8, "gtc reached only " << r.finalTestAcc);  // chance: 1/3
    BOOST_REQUIRE(r.history.size() == 4u);
    BOOST_TEST(std::isfinite(r.history.back().bits));
    io::CheckpointReader ck(c.outDir + "/checkpoint.h5");
    BOOST_TEST(ck.attrString("config", "bit-penalty") == "0.01");
    BOOST_TEST(ck.attrString("config", "gtc-eps") == "0.0078125");
    BOOST_TEST(ck.attrString("config", "method") == "gtc");
    // theta of the one quantized layer moved from its start (0, 1)
    const Vector t1 = ck.read("optim/trainable/fc1.weights/theta1", Shape{1});
    const Vector t2 = ck.read("optim/trainable/fc1.weights/theta2", Shape{1});
    BOOST_TEST_MESSAGE("gtc: final test accuracy " << r.finalTestAcc << ", bits "
                                               << r.history.back().bits << ", theta (" << t1[0]
                                               << ", " << t2[0] << ")");
    BOOST_TEST((t1[0] != 0.0f || t2[0] != 1.0f));
    const Vector w = ck.read("params/fc1.weights", ck.shape("params/fc1.weights"));
    BOOST_TEST(std::all_of(w.data(), w.data() + w.size(), zeroOrPowerOfTwo));

    // 2 epochs, then --resume to 4: the same rows as the straight run
    TrainConfig split = config("gtc-split");
    split.epochs = 2;
    train(split, nullptr);
    split.epochs = 4;
    split.resume = true;
    const TrainResult resumed = train(split, nullptr);
    BOOST_TEST(resumed.finalTestAcc == r.finalTestAcc);
    BOOST_TEST(resumed.history.back().bits == r.history.back().bits);
    requireSameMetrics(c.outDir, split.outDir, "resumed");

    // the eps is part of the quantizer: resuming with another is refused
    split.opt.gtc.eps = 0.01f;
    split.epochs = 5;
    BOOST_CHECK_EXCEPTION(train(split, nullptr), std::invalid_argument,
                          messageContains("this optimizer has 'gtc,eps=0.01'"));
}

BOOST_AUTO_TEST_CASE(gtc_with_its_joint_teacher_learns_checkpoints_and_resumes) {
    // The paper's GTC: the float teacher at W and the student at Q(W) trained together (Adam,
    // lambda1 = 0.8, lambda2 divided by 10 every 20 steps here, so that the schedule crosses
    // the resume point: 12 steps per epoch)
    auto config = [](const std::string& tag) {
        TrainConfig c = tinyConfig("gtc");
        c.setOptimizer("adam");
        c.lr = 0.01;
        c.opt.gtcJointTeacher = true;
        c.opt.ste.bitPenalty = 0.04;
        c.opt.ste.bitPenaltyEvery = 20;
        c.outDir = testing::tempDir(tag);
        return c;
    };
    TrainConfig c = config("gtc-joint-straight");
    std::ostringstream progress;
    const TrainResult r = train(c, &progress);
    BOOST_TEST(r.status == "completed");
    BOOST_TEST(r.finalTestAcc >= 0.8, "gtc (joint) reached only " << r.finalTestAcc);  // chance 1/3
    BOOST_TEST(progress.str().find("joint float teacher (distillation weight 0.8)") != std::string::npos,
               progress.str());
    BOOST_TEST(progress.str().find("bit penalty 0.04 x0.1 every 20 steps") != std::string::npos);
    io::CheckpointReader ck(c.outDir + "/checkpoint.h5");
    BOOST_TEST(ck.attrString("config", "gtc-teacher") == "joint");
    BOOST_TEST(ck.attrString("config", "bit-penalty-every") == "20");
    const Vector w = ck.read("params/fc1.weights", ck.shape("params/fc1.weights"));
    BOOST_TEST(std::all_of(w.data(), w.data() + w.size(), zeroOrPowerOfTwo));

    // bits.csv: one row per epoch and quantized layer (the tiny model's fc1), the bits
    // between the exponents it names, the last row's theta as the checkpoint's
    const auto bits = readLines(c.outDir + "/bits.csv");
    BOOST_REQUIRE(bits.size() == 5u);
    BOOST_TEST(bits[0] == "epoch,block,bits,exponent_min,exponent_max,theta1,theta2,nonzeros");
    BOOST_TEST(bits[4].rfind("3,fc1.weights,", 0) == 0u, bits[4]);
    {
        std::vector<std::string> f;
        std::stringstream ss(bits[4]);
        for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
        BOOST_REQUIRE(f.size() == 8u);
        const int lo = std::stoi(f[3]), hi = std::stoi(f[4]);
        BOOST_TEST(std::stoi(f[2]) == 1 + static_cast<int>(std::ceil(std::log2(hi - lo + 1))));
        const Vector t1 = ck.read("optim/trainable/fc1.weights/theta1", Shape{1});
        BOOST_TEST(std::stof(f[5]) == t1[0]);
    }

    TrainConfig split = config("gtc-joint-split");
    split.epochs = 2;
    train(split, nullptr);
    split.epochs = 4;
    split.resume = true;
    const TrainResult resumed = train(split, nullptr);
    BOOST_TEST(resumed.finalTestAcc == r.finalTestAcc);
    requireSameMetrics(c.outDir, split.outDir, "resumed");
    BOOST_TEST(readLines(split.outDir + "/bits.csv") == bits);  // the resume keeps and continues it
}

BOOST_AUTO_TEST_CASE(gtc_with_a_non_finite_theta_diverges_and_keeps_its_checkpoint) {
    // theta's learning rate so large that theta leaves the floats in the second epoch: the run
    // ends "diverged" (not an exception), and the checkpoint of the first epoch is kept
    TrainConfig c = tinyConfig("gtc");
    c.setOptimizer("adam");
    c.lr = 0.01;
    c.epochs = 1;
    c.outDir = testing::tempDir("gtc-nan");
    BOOST_REQUIRE(train(c, nullptr).status == "completed");
    const auto before = fs::last_write_time(c.outDir + "/checkpoint.h5");
    c.epochs = 3;
    c.resume = true;
    c.opt.gtcThetaLr = 1e36;
    const TrainResult r = train(c, nullptr);
    BOOST_TEST(r.status == "diverged");
    BOOST_TEST(r.epochsCompleted == 1);
    BOOST_TEST((fs::last_write_time(c.outDir + "/checkpoint.h5") == before));
}

BOOST_AUTO_TEST_CASE(every_method_learns_from_a_frozen_teacher) {
    // A float run, then every other method distilling from it (--teacher); the teacher changes
    // the training loss (its term is > 0), and a run with a teacher resumes row for row.
    TrainConfig t = tinyConfig("fp");
    t.outDir = testing::tempDir("teacher-fp");
    BOOST_REQUIRE(train(t, nullptr).finalTestAcc >= 0.8);
    for (const std::string& m : {"fp", "twn", "ttq", "admm", "pgd", "rpr", "inc", "bc"}) {
        TrainConfig plain = tinyConfig(m);
        const TrainResult p = train(plain, nullptr);
        TrainConfig c = tinyConfig(m);
        c.teacher = t.outDir;
        c.distillWeight = 1.0;
        c.distillTemperature = 2.0;
        c.outDir = testing::tempDir("student-" + m);
        const TrainResult r = train(c, nullptr);
        BOOST_TEST(r.status == "completed");
        BOOST_TEST(r.finalTestAcc >= 0.8, m << " with a teacher reached only " << r.finalTestAcc);
        BOOST_TEST(r.history.front().trainLoss != p.history.front().trainLoss, m);
        io::CheckpointReader ck(c.outDir + "/checkpoint.h5");
        BOOST_TEST(ck.attrString("config", "teacher") == t.outDir);
        BOOST_TEST(ck.attrString("config", "distill-temperature") == "2");
    }
    TrainConfig split = tinyConfig("twn");
    split.teacher = t.outDir + "/checkpoint.h5";  // a file works as well as the directory
    split.distillWeight = 1.0;
    split.outDir = testing::tempDir("student-split");
    split.epochs = 2;
    train(split, nullptr);
    split.epochs = 4;
    split.resume = true;
    train(split, nullptr);
    TrainConfig straight = split;
    straight.resume = false;
    straight.outDir = testing::tempDir("student-straight");
    train(straight, nullptr);
    requireSameMetrics(straight.outDir, split.outDir, "resumed");
}

BOOST_AUTO_TEST_CASE(bad_teachers_are_refused_before_training) {
    // a teacher trained on other images (16x16), a missing one, and gtc's joint teacher with a
    // frozen one: a message naming the problem, and no checkpoint written
    const std::string other = testing::tempDir("bands16");
    testing::writeBandsIdx(other, "train", 60, 16, 5);
    testing::writeBandsIdx(other, "t10k", 30, 16, 6);
    TrainConfig t = tinyConfig("fp");
    t.dataDir = other;
    t.epochs = 1;
    t.outDir = testing::tempDir("teacher16");
    train(t, nullptr);
    TrainConfig c = tinyConfig("twn");
    c.teacher = t.outDir;
    c.outDir = testing::tempDir("student-bad");
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error,
                          messageContains("(tiny trained on mnist) does not fit this run's 1x12x12 "
                                          "images"));
    BOOST_TEST(!fs::exists(c.outDir + "/checkpoint.h5"));
    c.teacher = c.outDir + "/nothing";
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error,
                          messageContains("--teacher: " + c.outDir + "/nothing does not exist"));
    TrainConfig g = tinyConfig("gtc");
    g.opt.gtcJointTeacher = true;
    g.teacher = t.outDir;
    BOOST_CHECK_EXCEPTION(g.validate(), std::invalid_argument,
                          messageContains("a frozen --teacher needs --gtc-teacher none"));
    TrainConfig w = tinyConfig("twn");
    w.distillWeight = 0.5;
    BOOST_CHECK_EXCEPTION(w.validate(), std::invalid_argument,
                          messageContains("distill-weight needs a teacher"));
}

BOOST_AUTO_TEST_CASE(resume_after_two_epochs_equals_four_straight_for_every_method) {
    for (const std::string& m : kMethods) {
        TrainConfig straight = tinyConfig(m);
        straight.outDir = testing::tempDir("straight-" + m);
        train(straight, nullptr);

        TrainConfig split = tinyConfig(m);
        split.outDir = testing::tempDir("split-" + m);
        split.epochs = 2;
        train(split, nullptr);
        split.epochs = 4;
        split.resume = true;
        train(split, nullptr);

        requireSameMetrics(straight.outDir, split.outDir, m);
    }
}

BOOST_AUTO_TEST_CASE(rpr_and_inc_report_the_fraction_and_checkpoint_the_partition) {
    for (const std::string m : {"rpr", "inc"}) {
        TrainConfig c = tinyConfig(m);
        c.outDir = testing::tempDir("fraction-" + m);
        c.fractions = {0.5, 0.8, 1.0};
        c.stageEpochs = 1;
        train(c, nullptr);
        const auto rows = readLines(c.outDir + "/metrics.csv");
        BOOST_TEST_REQUIRE(rows.size() == 5u);
        BOOST_TEST(rows[0].substr(rows[0].rfind(',') + 1) == "freeze_fraction");
        const std::vector<std::string> expected{"0.5", "0.8", "1", "1"};
        for (size_t e = 0; e < 4; ++e)
            BOOST_TEST(rows[e + 1].substr(rows[e + 1].rfind(',') + 1) == expected[e], m << " epoch " << e);
        io::CheckpointReader ck(c.outDir + "/checkpoint.h5");
        BOOST_TEST(ck.attrDouble("optim", "fraction") == 1.0);
        BOOST_TEST(ck.has("optim/mask/fc1.weights"));
    }
}

BOOST_AUTO_TEST_CASE(recipes_fill_only_what_was_not_given) {
    auto none = [](const std::string&) { return false; };
    TrainConfig c;  // lenet5, multistep
    c.method = "ttq";
    c.epochs = 20;
    auto filled = applyRecipe(c, none);
    BOOST_TEST(c.lr == 0.05);
    BOOST_TEST((c.lrSteps == std::vector<Index>{10, 15}));
    BOOST_TEST(c.opt.inner.sgd.weightDecay == 5e-4);
    BOOST_TEST(c.dropout == 0.3f);
    BOOST_TEST(c.opt.ttqThreshold == 0.2);
    BOOST_TEST(filled.size() == 5u);
    BOOST_CHECK_NO_THROW(c.validate());

    TrainConfig a;  // admm from scratch: coupling and a final phase; fine-tuning: rho 1e-2 x1.6
    a.method = "admm";
    a.epochs = 30;
    applyRecipe(a, none);
    BOOST_TEST((a.opt.admm.rhoSchedule == optim::RhoSchedule::Coupling));
    BOOST_TEST(a.opt.admm.finalEpochs == 6);        // free scale: E/5 epochs at G
    BOOST_TEST(!a.opt.admm.couplingFollowsLr);      // and rho blind to lr drops
    BOOST_TEST(a.opt.admm.couplingGrowth == 0.0);  // auto: couplingMax by the final phase
    TrainConfig one = TrainConfig{};
    one.method = "admm";
    one.epochs = 30;
    one.alpha = "one";
    applyRecipe(one, none);
    BOOST_TEST(one.opt.admm.finalEpochs == 3);  // alpha = 1: E/10, rho from the current lr
    BOOST_TEST(one.opt.admm.couplingFollowsLr);
    BOOST_TEST((one.opt.admm.lossAt == optim::LossAt::W));
    TrainConfig mf = TrainConfig{};  // the multiplication-free network: loss at P(W + U)
    mf.method = "admm";
    mf.epochs = 30;
    mf.batchNorm = false;
    mf.quantizeFirst = mf.quantizeLast = true;
    applyRecipe(mf, none);
    BOOST_TEST((mf.opt.admm.lossAt == optim::LossAt::Projection));
    BOOST_TEST(mf.opt.admm.dualFollowsLr);
    BOOST_TEST(!mf.opt.admm.extragradient);
    BOOST_CHECK_NO_THROW(mf.validate());
    BOOST_TEST(!a.opt.admm.extragradient);
    BOOST_TEST(a.opt.admm.outerEverySteps == 100);
    TrainConfig f = TrainConfig{};
    f.method = "admm";
    f.epochs = 10;
    f.init = "runs/some-float-run";
    applyRecipe(f, none);
    BOOST_TEST(f.lr == 0.01);
    BOOST_TEST((f.lrSteps == std::vector<Index>{5, 8}));
    BOOST_TEST(f.opt.admm.rho == 1e-2);
    BOOST_TEST(f.opt.admm.rhoGrowth == 1.6);
    BOOST_TEST((f.opt.admm.rhoSchedule == optim::RhoSchedule::Growth));
    BOOST_TEST(f.opt.admm.extragradient);  // with BN, as measured (docs/results.md)
    TrainConfig n = f;
    n.batchNorm = false;
    n.opt.admm.extragradient = true;
    applyRecipe(n, none);
    BOOST_TEST(!n.opt.admm.extragradient);  // diverges without BN

    TrainConfig gtc;  // the paper's GTC: Adam, the joint teacher, lambda2 annealed 6 times
    gtc.method = "gtc";
    gtc.epochs = 30;
    applyRecipe(gtc, none);
    BOOST_TEST((gtc.opt.inner.rule == optim::InnerSettings::Rule::Adam));
    BOOST_TEST(gtc.lr == 1e-3);
    BOOST_TEST(gtc.opt.inner.adam.weightDecay == 0.0);
    BOOST_TEST(gtc.opt.gtcJointTeacher);
    BOOST_TEST(gtc.opt.ste.bitPenalty == 0.04);
    BOOST_TEST(gtc.opt.ste.bitPenaltyEvery == 3000);  // 30 epochs x 600 batches / 6
    BOOST_CHECK_NO_THROW(gtc.validate());
    TrainConfig kd = TrainConfig{};  // with a frozen teacher, gtc's own is off
    kd.method = "gtc";
    kd.teacher = "runs/float";
    applyRecipe(kd, none);
    BOOST_TEST(!kd.opt.gtcJointTeacher);
    BOOST_CHECK_NO_THROW(kd.validate());

    TrainConfig g;  // what the user gave stays
    g.method = "admm";
    g.epochs = 20;
    g.lr = 0.2;
    g.opt.admm.rho = 3e-3;
    const auto given = [](const std::string& flag) {
        return flag == "lr" || flag == "rho-schedule" || flag == "dropout";
    };
    filled = applyRecipe(g, given);
    BOOST_TEST(g.lr == 0.2);
    BOOST_TEST((g.opt.admm.rhoSchedule == optim::RhoSchedule::Growth));
    BOOST_TEST(g.dropout == 0.0f);
    BOOST_TEST((std::find(filled.begin(), filled.end(), "lr") == filled.end()));
    BOOST_TEST((std::find(filled.begin(), filled.end(), "final-epochs") != filled.end()));

    TrainConfig v;  // no measured recipe for vgg7: only the lr steps
    v.model = "vgg7";
    v.epochs = 8;
    filled = applyRecipe(v, none);
    BOOST_TEST((filled == std::vector<std::string>{"lr-steps"}));
    BOOST_TEST((v.lrSteps == std::vector<Index>{4, 6}));
}

BOOST_AUTO_TEST_CASE(aliases_resolve_to_the_registry_name) {
    TrainConfig c = tinyConfig("binaryconnect");
    c.epochs = 1;
    c.outDir = testing::tempDir("alias");
    const TrainResult r = train(c, nullptr);
    BOOST_TEST(r.status == "completed");
    io::CheckpointReader ck(c.outDir + "/checkpoint.h5");
    BOOST_TEST(ck.attrString("config", "method") == "bc");  // stored under the canonical name
    BOOST_TEST(ck.attrString("config", "projection") == "binary");
    BOOST_TEST(ck.attrDouble("optim", "latentClip") == 1.0);  // BinaryConnect's preset
    TrainConfig more = c;  // the canonical name resumes the alias's run
    more.method = "bc";
    more.epochs = 2;
    more.resume = true;
    BOOST_TEST(train(more, nullptr).epochsCompleted == 2);
}

BOOST_AUTO_TEST_CASE(resume_with_no_epochs_left_reports_the_deployed_point) {
    TrainConfig c = tinyConfig("twn");
    c.epochs = 2;
    c.outDir = testing::tempDir("no-epochs-left");
    const TrainResult first = train(c, nullptr);
    for (const Index epochs : {Index(2), Index(1)}) {
        TrainConfig again = c;
        again.epochs = epochs;
        again.resume = true;
        const TrainResult r = train(again, nullptr);
        BOOST_TEST(r.status == "completed");
        BOOST_TEST(r.epochsCompleted == 2);
        BOOST_TEST(r.finalTestAcc == first.finalTestAcc);
        BOOST_TEST(r.bestTestAcc == first.bestTestAcc);
        BOOST_TEST(r.cost.nonzeroWeights == first.cost.nonzeroWeights);
    }
    // the finished run's summary.json is not rewritten by a resume that ran nothing
    const auto before = readLines(c.outDir + "/summary.json");
    TrainConfig again = c;
    again.resume = true;
    again.bnRecalibrate = 3;  // a re-measurement that may differ must not replace the record
    train(again, nullptr);
    BOOST_TEST((readLines(c.outDir + "/summary.json") == before));
}

BOOST_AUTO_TEST_CASE(init_starts_from_a_float_checkpoint) {
    TrainConfig fp = tinyConfig("fp");
    fp.outDir = testing::tempDir("init-fp");
    const TrainResult base = train(fp, nullptr);
    // Zero epochs from the float run: the deployed float weights are the float run's.
    TrainConfig same = tinyConfig("fp");
    same.epochs = 0;
    same.init = fp.outDir;
    BOOST_TEST(train(same, nullptr).finalTestAcc == base.finalTestAcc);
    // RPR from it starts high: after one epoch it is already well above chance.
    TrainConfig rpr = tinyConfig("rpr");
    rpr.epochs = 1;
    rpr.init = fp.outDir + "/checkpoint.h5";
    BOOST_TEST(train(rpr, nullptr).finalTestAcc >= 0.8);
    // A missing or foreign checkpoint is an error naming it.
    rpr.init = fp.outDir + "/nothing.h5";
    BOOST_CHECK_EXCEPTION(train(rpr, nullptr), std::runtime_error, messageContains("nothing.h5"));
    rpr.init = fp.outDir;
    rpr.width = 2;
    BOOST_CHECK_EXCEPTION(train(rpr, nullptr), std::runtime_error, messageContains("--init"));
}

BOOST_AUTO_TEST_CASE(interrupt_mid_epoch_then_resume_is_exact) {
    TrainConfig straight = tinyConfig("admm");
    straight.outDir = testing::tempDir("int-straight");
    train(straight, nullptr);

    TrainConfig run = tinyConfig("admm");
    run.outDir = testing::tempDir("int-split");
    stopRequested = true;  // as the SIGINT handler does: stop after the current step
    const TrainResult first = train(run, nullptr);
    stopRequested = false;
    BOOST_TEST(first.status == "interrupted");
    io::CheckpointReader ck(run.outDir + "/checkpoint.h5");
    BOOST_TEST(ck.attrInt("progress", "batch") == 1);
    run.resume = true;
    train(run, nullptr);
    requireSameMetrics(straight.outDir, run.outDir, "resumed");
}

BOOST_AUTO_TEST_CASE(resume_refuses_a_different_run_and_bad_files) {
    TrainConfig c = tinyConfig("twn");
    c.outDir = testing::tempDir("refuse");
    c.epochs = 1;
    train(c, nullptr);
    const std::string ck = c.outDir + "/checkpoint.h5";
    const auto size = fs::file_size(ck);

    TrainConfig other = c;
    other.resume = true;
    other.method = "admm";
    BOOST_CHECK_EXCEPTION(train(other, nullptr), std::runtime_error,
                          messageContains("was written for method = 'twn', this run has 'admm'"));
    other = c;
    other.resume = true;
    other.width = 2;
    BOOST_CHECK_EXCEPTION(train(other, nullptr), std::runtime_error,
                          messageContains("was written for width = '1', this run has '2'"));

    // A truncated checkpoint: a clear error, and the file is left as it was.
    const std::string cut = testing::tempDir("cut");
    {
        std::ifstream in(ck, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        std::ofstream out(cut + "/checkpoint.h5", std::ios::binary);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    }
    fs::copy_file(c.outDir + "/metrics.csv", cut + "/metrics.csv");
    TrainConfig broken = c;
    broken.outDir = cut;
    broken.resume = true;
    BOOST_CHECK_THROW(train(broken, nullptr), std::runtime_error);
    BOOST_TEST(fs::file_size(cut + "/checkpoint.h5") == size / 2);
    BOOST_TEST(fs::file_size(ck) == size);

    TrainConfig missing = c;
    missing.outDir = testing::tempDir("missing");
    missing.resume = true;
    BOOST_CHECK_EXCEPTION(train(missing, nullptr), std::runtime_error,
                          messageContains("does not exist"));
}

BOOST_AUTO_TEST_CASE(divergence_is_a_status_and_keeps_the_last_checkpoint) {
    TrainConfig c = tinyConfig("fp");
    c.outDir = testing::tempDir("diverge");
    c.epochs = 1;
    train(c, nullptr);
    const auto before = fs::last_write_time(c.outDir + "/checkpoint.h5");
    c.epochs = 3;
    c.resume = true;
    c.lr = 1e9;  // not part of a run's identity: resuming with a new lr is allowed
    c.setWeightDecay(0);
    const TrainResult r = train(c, nullptr);
    BOOST_TEST(r.status == "diverged");
    BOOST_TEST(r.epochsCompleted == 1);
    BOOST_TEST((fs::last_write_time(c.outDir + "/checkpoint.h5") == before));
    const auto summary = readLines(c.outDir + "/summary.json");
    BOOST_TEST(summary.size() > 3u);
    BOOST_TEST(summary[1].find("\"status\": \"diverged\"") != std::string::npos);
    // the accuracy recorded is the last good epoch's (the checkpoint's), not 0 or null
    TrainConfig first = c;
    first.resume = false;
    first.epochs = 1;
    first.lr = tinyConfig("fp").lr;
    first.setWeightDecay(tinyConfig("fp").opt.inner.sgd.weightDecay);
    first.outDir = testing::tempDir("diverge-ref");
    const double good = train(first, nullptr).finalTestAcc;
    BOOST_TEST(good > 0.5);
    BOOST_TEST(r.finalTestAcc == good);
    const std::string text = [&] {
        std::string t;
        for (const auto& l : summary) t += l + "\n";
        return t;
    }();
    BOOST_TEST(text.find("\"final_test_acc\": null") == std::string::npos);
    BOOST_TEST(text.find("\"final_test_acc\": 0,") == std::string::npos);
}

namespace {

/// A StateWriter that passes everything on to `out`, with `edit` applied to each float tensor.
class EditingWriter final : public StateWriter {
public:
    EditingWriter(StateWriter& out, std::function<void(const std::string&, Vector&)> edit)
        : out_(out), edit_(std::move(edit)) {}
    void write(const std::string& key, CVecRef data, const Shape& shape) override {
        Vector v = data;
        edit_(key, v);
        out_.write(key, v, shape);
    }
    void writeInts(const std::string& key, const std::vector<std::int64_t>& d) override {
        out_.writeInts(key, d);
    }
    void attr(const std::string& p, const std::string& n, double v) override { out_.attr(p, n, v); }
    void attr(const std::string& p, const std::string& n, std::int64_t v) override { out_.attr(p, n, v); }
    void attr(const std::string& p, const std::string& n, const std::string& v) override {
        out_.attr(p, n, v);
    }

private:
    StateWriter& out_;
    std::function<void(const std::string&, Vector&)> edit_;
};

/// A checkpoint --init can read (params/ and net/ of the tiny model on the bands data), with
/// `edit` applied to every tensor written.
std::string editedCheckpoint(const std::string& tag,
                             const std::function<void(const std::string&, Vector&)>& edit) {
    const io::DataSplit d = io::loadDataset("mnist", dataDir(), 0, 0);
    auto net = nn::makeModel("tiny", {d.train.channels, d.train.height, d.train.width},
                             d.train.numClasses, nn::ModelOptions{});
    net->initialize(1);
    const std::string path = testing::tempDir(tag) + "/checkpoint.h5";
    io::CheckpointWriter w(path);
    EditingWriter e(w, edit);
    for (const ParameterBlock* b : net->parameters().all()) e.write("params/" + b->name, b->value, b->shape);
    net->saveState(e, "net/");
    w.close();
    return path;
}

}  // namespace

BOOST_AUTO_TEST_CASE(non_finite_checkpoints_and_bn_variances_are_refused) {
    TrainConfig c = tinyConfig("fp");
    c.epochs = 1;
    c.init = editedCheckpoint("ok-init", [](const std::string&, Vector&) {});
    BOOST_TEST(train(c, nullptr).finalTestAcc > 0.5);  // the unedited file trains
    c.init = editedCheckpoint("nan-init", [](const std::string& k, Vector& v) {
        if (k.find("weights") != std::string::npos) v[1] = std::nanf("");
    });
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error, messageContains("holds nan at index 1"));
    c.init = editedCheckpoint("var-init", [](const std::string& k, Vector& v) {
        if (k.find("running_var") != std::string::npos) v[0] = -1;
    });
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error,
                          messageContains("running_var[0] is -1, not a variance"));
}

BOOST_AUTO_TEST_CASE(test_images_of_another_size_are_refused_before_training) {
    const std::string dir = testing::tempDir("other-size");
    testing::writeBandsIdx(dir, "train", 60, 12, 1);
    testing::writeBandsIdx(dir, "t10k", 30, 10, 2);
    TrainConfig c = tinyConfig("fp");
    c.dataDir = dir;
    c.outDir = testing::tempDir("other-size-out");
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error,
                          messageContains("test images of " + dir + " are 1x10x10"));
    BOOST_TEST(!fs::exists(c.outDir + "/metrics.csv"));  // not one epoch was trained
}

BOOST_AUTO_TEST_CASE(bad_output_dirs_data_and_metrics_are_found_before_training) {
    // --out under a regular file: an error at once, naming the directory
    const std::string dir = testing::tempDir("bad-out");
    std::ofstream(dir + "/file") << "x";
    TrainConfig c = tinyConfig("twn");
    c.epochs = 1;
    c.outDir = dir + "/file/run";
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error, messageContains("--out: cannot create"));
    BOOST_TEST(!fs::exists(dir + "/file/run"));

    // a run to resume
    c.outDir = testing::tempDir("resume-checks");
    c.epochs = 2;
    train(c, nullptr);
    c.epochs = 3;
    c.resume = true;
    // other data: the fingerprint differs (--test-limit is not part of the config's identity)
    TrainConfig other = c;
    other.testLimit = 50;
    BOOST_CHECK_EXCEPTION(train(other, nullptr), std::runtime_error, messageContains("data fingerprint"));
    // a garbled metrics.csv: an error naming the line, and the file is left as it is
    const std::string metrics = c.outDir + "/metrics.csv";
    const auto rows = readLines(metrics);
    BOOST_TEST_REQUIRE(rows.size() == 3u);
    std::ofstream(metrics, std::ios::app) << "garbage,,\n";
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error, messageContains("metrics.csv line 4"));
    BOOST_TEST(readLines(metrics).size() == 4u);
    // a blank line and a cut last line (no newline) are dropped; the run resumes
    {
        std::ofstream f(metrics, std::ios::trunc);
        f << rows[0] << "\n\n" << rows[1] << "\n" << rows[2] << "\n" << rows[2].substr(0, 5);
    }
    train(c, nullptr);
    const auto resumed = readLines(metrics);
    BOOST_TEST_REQUIRE(resumed.size() == 4u);
    BOOST_TEST(resumed[1] == rows[1]);
    BOOST_TEST(resumed[3].rfind("2,", 0) == 0);
    // a deleted metrics.csv: the resumed run starts a new one (with a warning on stderr)
    fs::remove(metrics);
    c.epochs = 4;
    train(c, nullptr);
    const auto fresh = readLines(metrics);
    BOOST_TEST_REQUIRE(fresh.size() == 2u);
    BOOST_TEST(fresh[1].rfind("3,", 0) == 0);
}

BOOST_AUTO_TEST_CASE(config_errors_name_the_field) {
    TrainConfig c = tinyConfig("admm");
    c.method = "admmm";
    BOOST_CHECK_EXCEPTION(c.validate(), std::invalid_argument,
                          messageContains("unknown method 'admmm'; known: fp, bc"));
    c = tinyConfig("fp");
    c.dataset = "imagenet";
    BOOST_CHECK_EXCEPTION(c.validate(), std::invalid_argument, messageContains("unknown dataset"));
    c = tinyConfig("fp");
    c.batchSize = 0;
    BOOST_CHECK_EXCEPTION(c.validate(), std::invalid_argument, messageContains("batch-size"));
    c = tinyConfig("admm");
    c.projection = "ternery:exact";
    BOOST_CHECK_EXCEPTION(c.validate(), std::invalid_argument, messageContains("known:"));
    c = tinyConfig("fp");
    c.dataDir = "/nonexistent/dir";
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error, messageContains("/nonexistent/dir"));
}

BOOST_AUTO_TEST_CASE(cost_of_multiplication_free_network) {
    TrainConfig c = tinyConfig("admm");
    c.alpha = "one";
    c.batchNorm = false;
    c.epochs = 0;  // the accounting of the deployed point, before any training
    const TrainResult r = train(c, nullptr);
    // Only the float first and last layers multiply.
    BOOST_TEST(r.cost.multiplications > 0);
    for (const auto& q : r.layers) BOOST_TEST(q.maxDistinctPerGroup <= 3);
    TrainConfig all = c;
    all.quantizeFirst = all.quantizeLast = true;
    const TrainResult free = train(all, nullptr);
    BOOST_TEST(free.cost.multiplications == 0);
    BOOST_TEST(free.cost.additions > 0);
    // alpha free per tensor, no BN: the scales propagate to the logits at export, 0 too; per
    // filter they stay, one multiplication per output value
    all.alpha = "free";
    BOOST_TEST(train(all, nullptr).cost.multiplications == 0);
    all.granularity = "filter";
    BOOST_TEST(train(all, nullptr).cost.multiplications > 0);
}
